#!/usr/bin/env node
// The bare reference for the tracker load test: a one-line protocol server that answers every `PING` line with
// `PONG`, in order, on each connection. Same framing cost as the tracker (lines), no Nest, no parsing, no storage.
//
//   node ping-server.js <port-file>     listens on 127.0.0.1:0 and writes its port to <port-file>
const { writeFileSync } = require('node:fs');
const net = require('node:net');

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  let tail = '';
  socket.setEncoding('latin1');
  socket.on('data', (text) => {
    const data = tail + text;
    let at = 0;
    let out = '';
    for (let nl = data.indexOf('\n'); nl >= 0; nl = data.indexOf('\n', at)) {
      out += data.slice(at, nl).trim() === 'PING' ? 'OK 0 PONG\n' : 'ERR UNKNOWN_COMMAND say PING\n';
      at = nl + 1;
    }
    tail = data.slice(at);
    if (out) socket.write(out);
  });
  socket.on('error', () => undefined);
});
server.listen(0, '127.0.0.1', () => writeFileSync(process.argv[2], String(server.address().port)));
process.on('SIGTERM', () => process.exit(0));
