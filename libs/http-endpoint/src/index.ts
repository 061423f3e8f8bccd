export * from './read-only-http.server';
