export * from './errors';
export * from './tokenize';
export * from './commands';
export * from './reply';
export * from './framing';
