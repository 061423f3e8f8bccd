#!/usr/bin/env node
// The bare reference for the tracker load test: a one-line protocol server that answers every `PING` line with
// `PONG`, in order, on each connection. Same framing cost as the tracker (lines), no Nest, no parsing, no storage.
// It answers the `HELLO p2p-share/2` a bench connection opens with as the tracker does, so both are driven alike.
//
//   node ping-server.js <port-file>     listens on 127.0.0.1:0 and writes its port to <port-file>
const { writeFileSync } = require('node:fs');
const net = require('node:net');

const HELLO = 'HELLO p2p-share/2';

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  let tail = '';
  socket.setEncoding('latin1');
  socket.on('data', (text) => {
    const data = tail + text;
    let at = 0;
    let out = '';
    for (let nl = data.indexOf('\n'); nl >= 0; nl = data.indexOf('\n', at)) {
      const line = data.slice(at, nl).trim();
      out += line === 'PING' ? 'OK 0 PONG\n' : line === HELLO ? 'OK 0 p2p-share/2\n' : 'ERR UNKNOWN_COMMAND say PING\n';
      at = nl + 1;
    }
    tail = data.slice(at);
    if (out) socket.write(out);
  });
  socket.on('error', () => undefined);
});
server.listen(0, '127.0.0.1', () => writeFileSync(process.argv[2], String(server.address().port)));
process.on('SIGTERM', () => process.exit(0));
