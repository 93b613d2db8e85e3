// node-smpp (the npm package `smpp`) as an ESME: the ceiling of bench/smpp.py.
//
//   node client.js PORT MESSAGES WINDOW [BINDS]
//
// Binds BINDS transceivers (default 1) as smss/secret to 127.0.0.1:PORT, submits
// MESSAGES one-part submit_sm with at most WINDOW unanswered per bind, and prints one
// JSON line: {"messages": N, "seconds": S, "per_second": R, "ok": OK}.  The clock runs
// from the first submit_sm to the last submit_sm_resp (the binds are made before).
'use strict';

const smpp = require('smpp');

const [port, messages, window, binds] = process.argv.slice(2).map(Number);
const sessions = [];
let bound = 0;
let next = 0;
let answered = 0;
let ok = 0;
let started = 0;

function pump(session) {
  while (session.inflight < window && next < messages) {
    const n = next++;
    session.inflight += 1;
    session.submit_sm({
      destination_addr: '420608337726', dest_addr_ton: 1, dest_addr_npi: 1,
      short_message: 'Benchmark message ' + n,
    }, (pdu) => {
      session.inflight -= 1;
      answered += 1;
      if (pdu.command_status === 0) ok += 1;
      if (answered === messages) {
        const seconds = (process.hrtime.bigint() - started) / 1000n;
        const s = Number(seconds) / 1e6;
        process.stdout.write(JSON.stringify({messages, seconds: s, per_second: messages / s, ok}) + '\n');
        for (const other of sessions) other.close();
        setTimeout(() => process.exit(0), 100);
        return;
      }
      pump(session);
    });
  }
}

for (let i = 0; i < (binds || 1); i++) {
  const session = smpp.connect({url: 'smpp://127.0.0.1:' + port, auto_enquire_link_period: 0});
  session.inflight = 0;
  session.on('error', (error) => { console.error(String(error)); process.exit(1); });
  session.bind_transceiver({system_id: 'smss', password: 'secret'}, (pdu) => {
    if (pdu.command_status !== 0) { console.error('bind refused ' + pdu.command_status); process.exit(1); }
    sessions.push(session);
    if (++bound === (binds || 1)) {
      started = process.hrtime.bigint();
      for (const s of sessions) pump(s);
    }
  });
}
