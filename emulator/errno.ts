// errno values (include/uapi/asm-generic/errno-base.h, errno.h). The device returns them negated, like
// firmware commands do; driver-api/ops.ts re-exports them for drivers and the stack.
export const EIO = 5;
export const ENOMEM = 12;
export const EBUSY = 16;
export const EEXIST = 17;
export const ENODEV = 19;
export const EINVAL = 22;
export const ENOSPC = 28;
export const EBADMSG = 74;
export const EMSGSIZE = 90;
export const EOPNOTSUPP = 95;
export const EKEYEXPIRED = 127;

export const ERRNO_NAMES: Readonly<Record<number, string>> = {
  [EIO]: 'EIO', [ENOMEM]: 'ENOMEM', [EBUSY]: 'EBUSY', [EEXIST]: 'EEXIST', [ENODEV]: 'ENODEV',
  [EINVAL]: 'EINVAL', [ENOSPC]: 'ENOSPC', [EBADMSG]: 'EBADMSG', [EMSGSIZE]: 'EMSGSIZE', [EOPNOTSUPP]: 'EOPNOTSUPP', [EKEYEXPIRED]: 'EKEYEXPIRED',
};

/** "-ENOSPC" for -28, "0" for 0. */
export function errnoName(ret: number): string {
  if (ret === 0) return '0';
  const name = ERRNO_NAMES[Math.abs(ret)];
  return name ? `${ret < 0 ? '-' : ''}${name}` : String(ret);
}
