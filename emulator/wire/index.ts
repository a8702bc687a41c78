export * from './addr.ts';
export * from './builder.ts';
export * from './checksum.ts';
export * from './link.ts';
export * from './packet.ts';
export * from './seq.ts';
export * from './tso.ts';
