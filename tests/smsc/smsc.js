// node-smpp (the npm package `smpp`) as an SMSC for smss's tests.
//
//   node smsc.js [port]        listens on 127.0.0.1 (port 0: the kernel picks one)
//
// Control: one JSON object per line on stdin ({"id": 1, "cmd": "...", ...}); every
// command is answered on stdout with {"reply": 1, ...}.  Everything the SMSC sees is
// reported on stdout as {"event": "...", ...}.  The SMSC stores and forwards: deliver_sm
// (mobile-originated messages and receipts) for an account with no receiving bind wait
// until one binds.
//
// Commands: set (behaviour, see `defaults`), deliver (send deliver_sm), enquire (send
// enquire_link), unbind (send unbind), drop (cut every connection), drop_session (cut
// one), stats, reset, quit.
// Every event carries `t`, the SMSC's clock in milliseconds.
//
// Misbehaviour, each as real SMSCs show it:
// - rate: at most N submit_sm per second (any 1000 ms) are taken; the others are answered
//   ESME_RTHROTTLED, "ESME has exceeded allowed message limits" (SMPP 3.4 section 5.1.3),
//   as an operator's per-account TPS limit or Jasmin's smpps_throughput quota (messages
//   per second) answers.  Taken submits count whatever their answer.
// - errorShare: this share of the taken submit_sm (0.2: every fifth) is answered
//   errorStatus (ESME_RSYSERR, 0x08, "System Error"), evenly, so a test knows which.
// - dropEvery: every Nth PDU the ESME sends (counted since the reset, binds included) is
//   not processed: the SMSC closes the connection instead (its answers already given go
//   out first), as an SMSC that restarts or sheds sessions does.  Neither that PDU nor any
//   after it on that connection is taken.
// - bindStatus: binds are answered with this command_status (ESME_RSYSERR: an SMSC that
//   cannot take sessions now; ESME_RBINDFAIL ...).
// - stopReading: after the next bind the session reads nothing more (an SMSC that hangs),
//   so what the ESME writes piles up in the TCP buffers.
// - receiptForm: the receipt text (SMPP 3.4 Appendix B, or a variant SMSCs write).
'use strict';

const smpp = require('smpp');
const readline = require('readline');

const defaults = {
  users: {smss: 'secret'},
  idFormat: 'hex',        // submit_sm_resp message_id: hex, hex0 (10 digits), dec, dec0
  receipts: 'off',        // off | after (receipt after submit_sm_resp) | before (receipt first)
  receiptTextId: 'same',  // id in the receipt text: same, dec, dec0, hex, lower
  receiptTlv: true,       // receipted_message_id and message_state TLVs
  receiptStat: 'DELIVRD',
  throttle: 0,            // the next N submit_sm get ESME_RTHROTTLED
  failStatus: 0,          // the next failCount submit_sm get this command_status,
  failCount: 0,
  failOn: [],             // and so do these submit_sm (1: the first since the reset)
  silent: 0,              // the next N submit_sm get no response at all
  respDelayMs: 0,         // delay before each submit_sm_resp
  answerEnquire: true,
  rate: 0,                // submit_sm taken per second (0: no limit); more: ESME_RTHROTTLED
  errorShare: 0,          // share of taken submit_sm answered errorStatus
  errorStatus: 0x08,      // ESME_RSYSERR
  dropEvery: 0,           // cut the connection instead of processing every Nth PDU
  bindStatus: 0,          // command_status of bind responses (0: bound)
  stopReading: false,     // read nothing after the next bind
  receiptForm: 'spec',    // spec | dlvr | upper | seconds | minimal
  quiet: false,           // no submit_sm event per submit (benchmarks: `stats` counts them)
};
const settings = JSON.parse(JSON.stringify(defaults));

let nextMessage = 0x1A2B3C00;
let submits = 0;
let pdus = 0;             // PDUs received from ESMEs since the reset (dropEvery)
let taken = [];           // when the submit_sm of the last second were taken (rate)
let errorCredit = 0;      // errorShare accumulated (an error each time it reaches 1)
let outstanding = 0;
let maxOutstanding = 0;
let sessionCount = 0;
const sessions = new Set();
const waitingDeliveries = {};  // system_id -> [pdu options] for no bound receiver yet

function emit(object) {
  if (object.event !== undefined) object.t = Date.now();
  process.stdout.write(JSON.stringify(object) + '\n');
}

function hex(value) {
  if (value === undefined || value === null) return null;
  if (Buffer.isBuffer(value)) return value.toString('hex');
  return Buffer.from(String(value), 'latin1').toString('hex');
}

function formatId(number, format) {
  switch (format) {
    case 'hex': return number.toString(16).toUpperCase();
    case 'hex0': return number.toString(16).toUpperCase().padStart(10, '0');
    case 'lower': return number.toString(16);
    case 'dec': return String(number);
    case 'dec0': return String(number).padStart(10, '0');
    default: throw new Error('unknown id format ' + format);
  }
}

function receivers(systemId) {
  return [...sessions].filter((s) => s.systemId === systemId && s.bound &&
    (s.mode === 'bind_receiver' || s.mode === 'bind_transceiver'));
}

function sendDeliveries(session, list, done) {
  // store and forward: a deliver_sm not answered before its connection closes is kept
  // for the account's next receiving bind
  const statuses = new Array(list.length);
  let left = list.length;
  if (!left) { done(statuses); return; }
  list.forEach((options, i) => {
    const key = ++session.deliveries;
    session.pending.set(key, options);
    const sent = session.smpp.deliver_sm(Object.assign({}, options), (resp) => {
      session.pending.delete(key);
      statuses[i] = resp.command_status;
      emit({event: 'deliver_sm_resp', session: session.number, status: resp.command_status});
      if (resp.command_status !== 0) keep(session.systemId, [options]);
      if (--left === 0) done(statuses);
    });
    if (!sent) {
      session.pending.delete(key);
      keep(session.systemId, [options]);
    }
  });
}

function keep(systemId, list) {
  (waitingDeliveries[systemId] = waitingDeliveries[systemId] || []).push(...list);
}

function deliver(systemId, list, done) {
  const targets = receivers(systemId);
  if (!targets.length) {
    keep(systemId, list);
    done(null);
    return;
  }
  sendDeliveries(targets[0], list, done);
}

function flushWaiting(session) {
  const list = waitingDeliveries[session.systemId];
  if (!list || !list.length) return;
  delete waitingDeliveries[session.systemId];
  sendDeliveries(session, list, () => {});
}

function receiptFor(pdu, messageId, number) {
  const textId = settings.receiptTextId === 'same' ? messageId
    : formatId(number, settings.receiptTextId);
  const stat = settings.receiptStat;
  const forms = {
    // SMPP 3.4 Appendix B
    spec: `id:${textId} sub:001 dlvrd:001 submit date:2401011200 done date:2401011200 ` +
      `stat:${stat} err:000 text:`,
    // "dlvr:" for dlvrd and underscores in the dates (SMSCs that spell them so)
    dlvr: `id:${textId} sub:001 dlvr:001 submit_date:2401011200 done_date:2401011200 ` +
      `stat:${stat} err:000 text:`,
    // upper case, 14-digit dates (Cloudhopper reads 10, 12 and 14 digits)
    upper: `ID:${textId} SUB:001 DLVRD:001 SUBMIT DATE:20240101120000 DONE DATE:` +
      `20240101120000 STAT:${stat} ERR:000 TEXT:Hello`,
    // 12-digit dates with seconds, the fields in another order
    seconds: `id:${textId} stat:${stat} err:000 sub:001 dlvrd:001 ` +
      `submit date:240101120000 done date:240101120000 Text:Hello`,
    // only what Kannel reads when its sscanf fails (id:, stat:, err:)
    minimal: `id:${textId} stat:${stat}`,
  };
  const text = forms[settings.receiptForm];
  if (text === undefined) throw new Error('unknown receiptForm ' + settings.receiptForm);
  const options = {
    source_addr_ton: pdu.dest_addr_ton, source_addr_npi: pdu.dest_addr_npi,
    source_addr: pdu.destination_addr,
    dest_addr_ton: pdu.source_addr_ton, dest_addr_npi: pdu.source_addr_npi,
    destination_addr: pdu.source_addr,
    esm_class: 0x04, data_coding: 0, short_message: Buffer.from(text, 'ascii'),
  };
  if (settings.receiptTlv) {
    options.receipted_message_id = messageId;
    options.message_state = {DELIVRD: 2, EXPIRED: 3, UNDELIV: 5, REJECTD: 8}[settings.receiptStat] || 7;
  }
  return options;
}

function describe(pdu) {
  const sm = pdu.short_message || {};
  const tlvs = {};
  for (const name of ['sar_msg_ref_num', 'sar_total_segments', 'sar_segment_seqnum']) {
    if (pdu[name] !== undefined) tlvs[name] = pdu[name];
  }
  let payloadText = null;
  if (pdu.message_payload !== undefined) {
    payloadText = typeof pdu.message_payload.message === 'string'
      ? pdu.message_payload.message : null;
  }
  return {
    service_type: pdu.service_type,
    source_addr_ton: pdu.source_addr_ton, source_addr_npi: pdu.source_addr_npi,
    source_addr: pdu.source_addr,
    dest_addr_ton: pdu.dest_addr_ton, dest_addr_npi: pdu.dest_addr_npi,
    destination_addr: pdu.destination_addr,
    esm_class: pdu.esm_class, registered_delivery: pdu.registered_delivery,
    data_coding: pdu.data_coding,
    udh: (sm.udh || []).map((b) => b.toString('hex')),
    text: typeof sm.message === 'string' ? sm.message : null,
    payload_text: payloadText,
    tlvs,
    raw: pdu.raw && pdu.raw.length <= 4096 ? pdu.raw.toString('hex') : null,  // big: not echoed
  };
}

// keep the raw octets of every PDU read (the library decodes text for us; tests also
// want to see the bytes as they came)
smpp.PDU.fromStream = function (stream, commandLength) {
  const buffer = stream.read(commandLength - 4);
  if (!buffer) return false;
  const head = Buffer.alloc(4);
  head.writeUInt32BE(commandLength, 0);
  const whole = Buffer.concat([head, buffer]);
  const pdu = new smpp.PDU(whole);
  pdu.raw = whole;
  return pdu;
};

function onSubmit(session, pdu) {
  submits += 1;
  const report = settings.quiet ? {} : Object.assign({event: 'submit_sm',
    session: session.number, sequence: pdu.sequence_number}, describe(pdu));
  if (settings.silent > 0) {
    settings.silent -= 1;
    if (!settings.quiet) emit(Object.assign(report, {status: null}));
    return;
  }
  let status = 0;
  const now = Date.now();
  taken = taken.filter((at) => now - at < 1000);
  if (settings.throttle > 0) {
    settings.throttle -= 1;
    status = smpp.ESME_RTHROTTLED;
  } else if (settings.rate > 0 && taken.length >= settings.rate) {
    status = smpp.ESME_RTHROTTLED;
  } else {
    taken.push(now);  // taken: it counts against the rate whatever its answer
    errorCredit += settings.errorShare;
    if (settings.errorShare > 0 && errorCredit >= 1 - 1e-9) {
      errorCredit -= 1;
      status = settings.errorStatus;
    } else if (settings.failCount > 0) {
      settings.failCount -= 1;
      status = settings.failStatus;
    } else if (settings.failOn.includes(submits)) {
      status = settings.failStatus;
    }
  }
  let messageId = null;
  let number = null;
  if (status === 0) {
    number = ++nextMessage;
    messageId = formatId(number, settings.idFormat);
  }
  if (!settings.quiet) emit(Object.assign(report, {status, message_id: messageId}));
  outstanding += 1;
  maxOutstanding = Math.max(maxOutstanding, outstanding);
  const wantsReceipt = status === 0 && settings.receipts !== 'off' &&
    (pdu.registered_delivery & 0x03) !== 0;
  const respond = () => {
    outstanding -= 1;
    session.smpp.send(pdu.response(status === 0 ? {message_id: messageId}
      : {command_status: status}));
    if (wantsReceipt && settings.receipts === 'after') {
      setTimeout(() => deliver(session.systemId, [receiptFor(pdu, messageId, number)],
        () => {}), 5);
    }
  };
  if (wantsReceipt && settings.receipts === 'before') {
    deliver(session.systemId, [receiptFor(pdu, messageId, number)], () => {});
    setTimeout(respond, Math.max(settings.respDelayMs, 150));
  } else if (settings.respDelayMs > 0) {
    setTimeout(respond, settings.respDelayMs);
  } else {
    respond();
  }
}

const server = smpp.createServer((raw) => {
  const session = {smpp: raw, number: ++sessionCount, systemId: null, mode: null, bound: false,
    pending: new Map(), deliveries: 0, dropped: false};
  sessions.add(session);
  const onBind = (pdu) => {
    const ok = settings.users[pdu.system_id] !== undefined &&
      settings.users[pdu.system_id] === pdu.password;
    const status = !ok ? smpp.ESME_RINVPASWD : settings.bindStatus;
    emit({event: 'bind', session: session.number, command: pdu.command,
      system_id: pdu.system_id, password: pdu.password, system_type: pdu.system_type,
      interface_version: pdu.interface_version, addr_ton: pdu.addr_ton,
      addr_npi: pdu.addr_npi, address_range: pdu.address_range, status});
    if (status !== 0) {
      raw.send(pdu.response({command_status: status}));
      return;
    }
    session.systemId = pdu.system_id;
    session.mode = pdu.command;
    session.bound = true;
    raw.send(pdu.response({system_id: 'nodesmsc'}));
    if (settings.stopReading) {
      settings.stopReading = false;
      raw.pause();
      raw.socket.pause();
      emit({event: 'stopped_reading', session: session.number});
      return;
    }
    flushWaiting(session);
  };
  // every PDU counts for dropEvery; the one that trips it is not processed
  raw.on('pdu', (pdu) => {
    pdus += 1;
    if (settings.dropEvery > 0 && pdus % settings.dropEvery === 0 && !session.dropped) {
      session.dropped = true;
      raw.pause();
      emit({event: 'drop', session: session.number, command: pdu.command,
        sequence: pdu.sequence_number});
      raw.socket.end();  // the answers already given go out first, then the FIN
      setTimeout(() => raw.destroy(), 100);
    }
  });
  const live = (handler) => (pdu) => { if (!session.dropped) handler(pdu); };
  raw.on('bind_transceiver', live(onBind));
  raw.on('bind_transmitter', live(onBind));
  raw.on('bind_receiver', live(onBind));
  raw.on('submit_sm', live((pdu) => onSubmit(session, pdu)));
  raw.on('enquire_link', live((pdu) => {
    emit({event: 'enquire_link', session: session.number});
    if (settings.answerEnquire) raw.send(pdu.response());
  }));
  raw.on('unbind', live((pdu) => {
    emit({event: 'unbind', session: session.number});
    session.bound = false;
    raw.send(pdu.response());
    raw.close();
  }));
  raw.on('error', (error) => emit({event: 'error', session: session.number,
    message: String(error)}));
  raw.on('close', () => {
    session.bound = false;
    sessions.delete(session);
    if (session.pending.size && session.systemId !== null) {
      keep(session.systemId, [...session.pending.values()]);
      session.pending.clear();
    }
    emit({event: 'close', session: session.number});
  });
});

function deliverOptions(spec) {
  const options = Object.assign({}, spec);
  delete options.short_message_hex;
  delete options.message_payload_hex;
  if (spec.short_message_hex !== undefined) {
    options.short_message = Buffer.from(spec.short_message_hex, 'hex');
  }
  if (spec.message_payload_hex !== undefined) {
    options.message_payload = Buffer.from(spec.message_payload_hex, 'hex');
  }
  return options;
}

const commands = {
  set(command) {
    for (const [key, value] of Object.entries(command)) {
      if (key !== 'id' && key !== 'cmd') settings[key] = value;
    }
    return {};
  },
  deliver(command, reply) {
    const systemId = command.system_id || 'smss';
    deliver(systemId, command.pdus.map(deliverOptions),
      (statuses) => reply(statuses === null ? {queued: command.pdus.length} : {statuses}));
  },
  enquire(command, reply) {
    const bound = [...sessions].filter((s) => s.bound);
    let left = bound.length;
    const statuses = [];
    if (!left) return {statuses};
    bound.forEach((s) => s.smpp.enquire_link({}, (resp) => {
      statuses.push(resp.command_status);
      if (--left === 0) reply({statuses});
    }));
  },
  unbind(command, reply) {
    const bound = [...sessions].filter((s) => s.bound);
    let left = bound.length;
    const statuses = [];
    if (!left) return {statuses};
    bound.forEach((s) => s.smpp.unbind({}, (resp) => {
      statuses.push(resp.command_status);
      s.bound = false;
      s.smpp.close();
      if (--left === 0) reply({statuses});
    }));
  },
  drop() {
    const count = sessions.size;
    for (const s of sessions) s.smpp.destroy();
    return {dropped: count};
  },
  drop_session(command) {  // cut one session (its number, as the events give it)
    const found = [...sessions].filter((s) => s.number === command.session);
    for (const s of found) s.smpp.destroy();
    return {dropped: found.length};
  },
  stats() {
    return {submits, max_outstanding: maxOutstanding, outstanding,
      sessions: [...sessions].map((s) => ({number: s.number, system_id: s.systemId,
        mode: s.mode, bound: s.bound})),
      waiting: Object.fromEntries(Object.entries(waitingDeliveries)
        .map(([k, v]) => [k, v.length]))};
  },
  reset() {  // a fresh SMSC for the next test: defaults, no sessions, nothing waiting
    Object.assign(settings, JSON.parse(JSON.stringify(defaults)));
    for (const s of sessions) {
      s.pending.clear();
      s.smpp.destroy();
    }
    for (const key of Object.keys(waitingDeliveries)) delete waitingDeliveries[key];
    submits = 0;
    pdus = 0;
    taken = [];
    errorCredit = 0;
    outstanding = 0;
    maxOutstanding = 0;
    return {};
  },
  quit() {
    setImmediate(() => process.exit(0));
    return {};
  },
};

readline.createInterface({input: process.stdin}).on('line', (line) => {
  if (!line.trim()) return;
  let command;
  try {
    command = JSON.parse(line);
  } catch (error) {
    emit({event: 'bad_command', line});
    return;
  }
  const handler = commands[command.cmd];
  const reply = (body) => emit(Object.assign({reply: command.id}, body));
  if (!handler) {
    reply({error: 'unknown command ' + command.cmd});
    return;
  }
  try {
    const result = handler(command, reply);
    if (result !== undefined) reply(result);
  } catch (error) {
    reply({error: String(error && error.stack || error)});
  }
});
process.stdin.on('end', () => process.exit(0));

server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  emit({event: 'listening', port: server.address().port});
});
