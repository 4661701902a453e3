// Raw tus requests, for cases a well-behaved client never sends.
export const TUS = { 'tus-resumable': '1.0.0' };

export function meta(pairs: Record<string, string>): string {
  return Object.entries(pairs)
    .map(([k, v]) => `${k} ${Buffer.from(v).toString('base64')}`)
    .join(',');
}

export async function create(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: { error?: { code: string; message: string } } | null; headers: Headers }> {
  const res = await fetch(`${url}/files/`, { method: 'POST', headers: { ...TUS, ...headers } });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}
