/** End-to-end tests: real tracker and client processes from dist/, on free 127.0.0.1 ports. */
module.exports = {
  rootDir: '..',
  roots: ['<rootDir>/test'],
  testRegex: '.*\\.e2e-spec\\.ts$',
  moduleFileExtensions: ['js', 'json', 'ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.spec.json' }] },
  testEnvironment: 'node',
  testTimeout: 60000,
  moduleNameMapper: {
    '^@app/protocol(|/.*)$': '<rootDir>/libs/protocol/src$1',
    '^@app/chunking(|/.*)$': '<rootDir>/libs/chunking/src$1',
    '^@app/line-client(|/.*)$': '<rootDir>/libs/line-client/src$1',
    '^@app/http-endpoint(|/.*)$': '<rootDir>/libs/http-endpoint/src$1',
    '^@app/tls(|/.*)$': '<rootDir>/libs/tls/src$1',
  },
};
