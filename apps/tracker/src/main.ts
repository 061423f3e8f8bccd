import { add } from '@app/protocol';
console.log('tracker', add(1, 2), process.argv.slice(2));
