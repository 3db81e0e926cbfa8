export * from './rewind-metrics.js';
export * from './observe.js';
