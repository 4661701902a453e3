/** The fields of a Glance v2 image the gateway reads. */
export interface Image {
  id: string;
  name: string | null;
  status: string;
  disk_format: string | null;
  container_format: string | null;
  owner: string | null;
  visibility: string;
  size: number | null;
  checksum: string | null;
  os_hash_algo: string | null;
  os_hash_value: string | null;
}

export interface NewImage {
  name: string;
  disk_format: string;
  container_format: string;
  visibility?: string;
  min_disk?: number;
  min_ram?: number;
  tags?: string[];
}

/** Who calls and where: the caller's token and the image endpoint root (no `/v2`). */
export interface GlanceAuth {
  endpoint: string;
  token: string;
}
