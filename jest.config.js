/** Unit tests: every *.spec.ts under apps/ and libs/, with services wired by Nest's testing module. */
module.exports = {
  rootDir: '.',
  roots: ['<rootDir>/apps', '<rootDir>/libs'],
  testRegex: '.*\\.spec\\.ts$',
  moduleFileExtensions: ['js', 'json', 'ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.spec.json' }] },
  testEnvironment: 'node',
  // both cores of the reference machine (jest's default leaves one idle): the unit run takes half the time
  maxWorkers: 2,
  moduleNameMapper: {
    '^@app/protocol(|/.*)$': '<rootDir>/libs/protocol/src$1',
    '^@app/chunking(|/.*)$': '<rootDir>/libs/chunking/src$1',
    '^@app/line-client(|/.*)$': '<rootDir>/libs/line-client/src$1',
    '^@app/http-endpoint(|/.*)$': '<rootDir>/libs/http-endpoint/src$1',
    '^@app/tls(|/.*)$': '<rootDir>/libs/tls/src$1',
  },
};
