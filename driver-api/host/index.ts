// The host model: simulated time, links, TCP endpoints.
export * from './sim.ts';
export * from './rng.ts';
export * from './link.ts';
export * from './tcp.ts';
export * from './host.ts';
export * from './pair.ts';
