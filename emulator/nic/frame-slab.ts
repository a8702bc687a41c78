// The device's TX buffer memory: frames the NIC puts on the wire are copied out of the stack's skb (the
// stack keeps its plaintext for retransmission; the device must not write over it). Copies are carved
// from 1 MiB slabs rather than allocated one by one: a typed-array allocation per frame costs more than
// encrypting it. Each frame starts at 2 mod 4 (NET_IP_ALIGN), so the IP and TCP headers and a TCP payload
// after them sit 4-byte aligned for the word-wise checksum. Slabs are never reused: a frame handed to the
// wire stays valid for as long as its holder keeps it.
const SLAB_SIZE = 1 << 20;
const NET_IP_ALIGN = 2;

export class FrameSlab {
  private slab = new ArrayBuffer(SLAB_SIZE);
  private off = NET_IP_ALIGN;

  /** A private copy of `src`. */
  copy(src: Uint8Array): Uint8Array {
    const out = this.alloc(src.length);
    out.set(src);
    return out;
  }

  /** `n` bytes of device memory for a frame the device writes itself. */
  alloc(n: number): Uint8Array {
    if (n > SLAB_SIZE >> 4) return new Uint8Array(n);
    if (this.off + n > SLAB_SIZE) {
      this.slab = new ArrayBuffer(SLAB_SIZE);
      this.off = NET_IP_ALIGN;
    }
    const out = new Uint8Array(this.slab, this.off, n);
    this.off += ((n + 3) & ~3) + 4; // next frame starts at 2 mod 4 again (off is 2 mod 4, n rounded to 4)
    return out;
  }
}
