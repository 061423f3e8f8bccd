export * from './errors';
export * from './identity';
export * from './self-signed';
export * from './starttls';
export * from './known-trackers';
