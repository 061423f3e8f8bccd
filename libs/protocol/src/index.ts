export * from './errors';
export * from './tokenize';
export * from './commands';
export * from './reply';
export * from './framing';
export * from './address';
export * from './tracker-info';
