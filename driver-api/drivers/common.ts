// What every reference driver needs around the emulated NIC: the net_device shell, RX completions turned
// into skbs, a deferred-work queue (the driver's workqueue), and the module shape a driver exports.
import type { Nic } from '../../emulator/nic/nic.ts';
import type { RxCompletion } from '../../emulator/nic/types.ts';
import type { NetDevFeatures, NetDevice, SkBuff, TlsDevOps, TlsKernelHelpers } from '../ops.ts';

export type ProbeOptions = {
  name?: string;
  features?: Partial<NetDevFeatures>;
  /** Run `fn` later (the driver's workqueue / firmware completion). Default: after the current RX poll. */
  schedule?: (delayUs: number, fn: () => void) => void;
  /** Driver-specific knobs (resync type, fault injection); each driver documents its own. */
  [knob: string]: unknown;
};

/** A driver module: what `--driver <name|path>` loads. A third-party module default-exports one. */
export interface DriverModule {
  readonly name: string;
  probe(nic: Nic, kernel: TlsKernelHelpers, opts?: ProbeOptions): NetDevice;
}

export function defaultFeatures(nic: Nic, f?: Partial<NetDevFeatures>): NetDevFeatures {
  return {
    tlsHwTxOffload: true,
    tlsHwRxOffload: true,
    txChecksumOffload: true,
    rxChecksumOffload: true,
    ...f,
  };
}

/** A minimal deferred-work queue: jobs scheduled with delay 0 run once the current poll returns. */
export class WorkQueue {
  private jobs: Array<() => void> = [];
  private running = false;
  constructor(private readonly external?: (delayUs: number, fn: () => void) => void) {}

  schedule(delayUs: number, fn: () => void): void {
    if (this.external) this.external(delayUs, fn);
    else this.jobs.push(fn);
  }

  /** Run queued jobs (called at the end of each RX completion when no external scheduler is given). */
  flush(): void {
    if (this.running) return;
    this.running = true;
    try {
      for (let i = 0; i < this.jobs.length; i++) this.jobs[i]!();
      this.jobs.length = 0;
    } finally {
      this.running = false;
    }
  }
}

export function rxSkb(cqe: RxCompletion): SkBuff {
  return { data: cqe.frame, sk: null, decrypted: cqe.decrypted, gsoSize: 0 };
}

/** The net_device a reference driver exposes; startXmit is the driver's ndo_start_xmit. */
export function makeNetDevice(
  name: string,
  nic: Nic,
  features: NetDevFeatures,
  ops: TlsDevOps,
  startXmit: (skb: SkBuff) => void,
): NetDevice {
  return {
    name,
    features,
    tlsdevOps: ops,
    isUp: () => nic.isLinkUp(),
    startXmit,
    tlsDebugHasContext: (tuple, dir) => nic.findContext(dir, tuple) >= 0,
  };
}
