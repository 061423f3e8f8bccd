export * from './chunk-plan';
export * from './chunk-hasher';
export * from './sha1.hasher';
export * from './chunking.module';
