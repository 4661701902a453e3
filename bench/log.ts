// Progress lines go to stderr; stdout carries only the final table.
const started = Date.now();

export function log(message: string): void {
  process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${message}\n`);
}
