export * from './aead.ts';
export { nodeBackend } from './node.ts';
