// 32-bit TCP sequence arithmetic (RFC 793 3.3, RFC 1982 serial numbers): right across wrap-around.
// Seqs are plain numbers in [0, 2^32).

export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** a - b as a signed distance in [-2^31, 2^31). */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

export function seqLt(a: number, b: number): boolean {
  return seqDiff(a, b) < 0;
}

export function seqLeq(a: number, b: number): boolean {
  return seqDiff(a, b) <= 0;
}

export function seqGt(a: number, b: number): boolean {
  return seqDiff(a, b) > 0;
}

export function seqGeq(a: number, b: number): boolean {
  return seqDiff(a, b) >= 0;
}

export function seqMax(a: number, b: number): number {
  return seqGeq(a, b) ? a : b;
}

export function seqMin(a: number, b: number): number {
  return seqLeq(a, b) ? a : b;
}

/** start <= x < end, wrap-aware (end - start must be < 2^31). */
export function seqInRange(x: number, start: number, end: number): boolean {
  return seqGeq(x, start) && seqLt(x, end);
}
