/** Glance's default `hashing_algorithm` (its `os_hash_algo`), until a Glance shows another one. */
export const DEFAULT_ALGO = 'sha512';

/** Glance names algorithms as Python's hashlib does; OpenSSL names a few of them otherwise. */
const OPENSSL_NAMES: Record<string, string> = {
  sha3_224: 'sha3-224',
  sha3_256: 'sha3-256',
  sha3_384: 'sha3-384',
  sha3_512: 'sha3-512',
  blake2b: 'blake2b512',
  blake2s: 'blake2s256',
};

/** Node's (OpenSSL's) name for Glance's `os_hash_algo`. */
export const opensslName = (algo: string): string => OPENSSL_NAMES[algo] ?? algo;
