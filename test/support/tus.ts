// tus-js-client in Node, as a real client of the gateway.
import fs from 'node:fs';
import * as tus from 'tus-js-client';

export interface TusResult {
  uploadUrl: string;
  headers: Record<string, string | null>;
}

export interface TusOptions {
  token: string;
  metadata: Record<string, string>;
  chunkSize?: number;
  retryDelays?: number[];
  endpoint?: string;
  /** Resume this upload instead of creating one. */
  uploadUrl?: string;
}

/** Upload a file and resolve with the upload URL and the final answer's gateway headers. */
export function tusUpload(gatewayUrl: string, file: string, opts: TusOptions): Promise<TusResult> {
  return new Promise((resolve, reject) => {
    let imageId: string | null = null;
    const upload = new tus.Upload(fs.createReadStream(file), {
      endpoint: opts.endpoint ?? `${gatewayUrl}/files/`,
      ...(opts.uploadUrl ? { uploadUrl: opts.uploadUrl } : {}),
      headers: { 'X-Auth-Token': opts.token },
      metadata: opts.metadata,
      chunkSize: opts.chunkSize ?? Infinity,
      retryDelays: opts.retryDelays ?? [0, 200, 500],
      onError: reject,
      // Glance-Image-Id comes on the creation answer, not the last one.
      onAfterResponse: (req, res) => {
        if (req.getMethod() === 'POST') imageId = res.getHeader('Glance-Image-Id') ?? null;
      },
      onSuccess: ({ lastResponse }) => {
        resolve({
          uploadUrl: upload.url!,
          headers: {
            'glance-upload-state': lastResponse.getHeader('Glance-Upload-State') ?? null,
            'glance-image-id': imageId,
          },
        });
      },
    });
    upload.start();
  });
}
