export * from './line-connection';
