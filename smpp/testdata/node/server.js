'use strict';
// server.js: a node-smpp SMSC for optgate's interop tests.
//
//   node server.js [--system-id ID] [--password PW] [--lifetime MS] [--on-bind JSON]
//
// Listens on 127.0.0.1, port 0, and prints {"ev":"listening","port":N,...}.
// Accepts binds of any type whose system_id and password match (also from
// SMPP_SYSTEM_ID / SMPP_PASSWORD; defaults "optgate" / "secret"): a wrong
// password is answered ESME_RINVPASWD, a wrong system_id ESME_RINVSYSID.
// Answers submit_sm with message ids "node-1", "node-2"... (ESME_RINVDSTADR
// when destination_addr is "000"), enquire_link,
// unbind (then closes), and unknown commands with generic_nack. Every PDU
// read or written is logged (see lib.js).
//
// Commands, one JSON object a line on stdin, act on the most recently bound
// session (or "session": n, counting binds from 1):
//   {"cmd":"deliver_sm","pdu":{...}}  push a deliver_sm (MO or receipt); with
//                                     "drop_after_write":true, destroy the connection
//                                     as soon as the PDU is written (an SMSC that
//                                     loses the link before our answer: it resends)
//   {"cmd":"enquire_link"}            send enquire_link
//   {"cmd":"unbind"}                  send unbind; close after unbind_resp
//   {"cmd":"raw","hex":"..."}         write octets as they are
//   {"cmd":"close"}                   drop the TCP connection
//   {"cmd":"exit"}                    exit
// --on-bind takes a JSON array of such commands, run after every bind.
// The process exits by itself after --lifetime ms (default 20000) and when
// stdin closes.

const lib = require('./lib');
const {smpp, emit, describe} = lib;

const a = lib.args(process.argv.slice(2));
const systemID = a['system-id'] || process.env.SMPP_SYSTEM_ID || 'optgate';
const password = a.password || process.env.SMPP_PASSWORD || 'secret';
const onBind = a['on-bind'] ? JSON.parse(a['on-bind']) : [];

const sessions = []; // bound sessions, in bind order
let nextID = 0;

function send(session, pdu, cb) {
	if (!session.send(pdu, cb)) {
		emit({ev: 'error', error: 'socket not writable', command: pdu.command});
		return;
	}
	emit(describe(pdu, 'out'));
}

function respond(session, req, options) {
	send(session, req.response(options || {}));
}

const server = smpp.createServer((session) => {
	let mode = null;
	emit({ev: 'connect', remote: session.socket.remoteAddress + ':' + session.socket.remotePort});
	session.on('pdu', (pdu) => {
		emit(describe(pdu, 'in'));
		switch (pdu.command) {
		case 'bind_transmitter':
		case 'bind_receiver':
		case 'bind_transceiver': {
			if (mode) {
				respond(session, pdu, {command_status: smpp.ESME_RALYBND});
				return;
			}
			if (pdu.system_id !== systemID) {
				respond(session, pdu, {command_status: smpp.ESME_RINVSYSID});
				return;
			}
			if (pdu.password !== password) {
				respond(session, pdu, {command_status: smpp.ESME_RINVPASWD});
				return;
			}
			mode = pdu.command.slice('bind_'.length);
			respond(session, pdu, {system_id: 'node-smsc'});
			sessions.push(session);
			emit({ev: 'bound', mode: mode, session: sessions.length, system_id: pdu.system_id});
			onBind.forEach((c) => run(Object.assign({session: sessions.length}, c)));
			return;
		}
		case 'submit_sm':
			if (mode !== 'transmitter' && mode !== 'transceiver') {
				respond(session, pdu, {command_status: smpp.ESME_RINVBNDSTS});
				return;
			}
			if (pdu.destination_addr === '000') {
				respond(session, pdu, {command_status: smpp.ESME_RINVDSTADR});
				return;
			}
			respond(session, pdu, {message_id: 'node-' + (++nextID)});
			return;
		case 'enquire_link':
			respond(session, pdu);
			return;
		case 'unbind':
			respond(session, pdu);
			session.close();
			return;
		case 'unknown':
			respond(session, pdu); // generic_nack ESME_RINVCMDID
			return;
		}
		// Responses (deliver_sm_resp, enquire_link_resp, unbind_resp) are logged only.
	});
	session.on('close', () => {
		emit({ev: 'close', mode: mode});
	});
	session.on('error', (e) => {
		emit({ev: 'session_error', error: String(e && e.message || e)});
	});
});

function pick(cmd) {
	const s = cmd.session ? sessions[cmd.session - 1] : sessions[sessions.length - 1];
	if (!s) {
		throw new Error('no bound session');
	}
	return s;
}

function run(cmd) {
	switch (cmd.cmd) {
	case 'deliver_sm': {
		const s = pick(cmd);
		const pdu = new smpp.PDU('deliver_sm', lib.buildOptions(cmd.pdu || {}));
		if (cmd.drop_after_write) {
			if (!s.send(pdu, null, () => {
				s.destroy();
				emit({ev: 'dropped', session: sessions.indexOf(s) + 1});
			})) {
				emit({ev: 'error', error: 'socket not writable', command: pdu.command});
				return;
			}
			emit(describe(pdu, 'out'));
			return;
		}
		send(s, pdu);
		return;
	}
	case 'enquire_link':
		send(pick(cmd), new smpp.PDU('enquire_link'));
		return;
	case 'unbind': {
		const s = pick(cmd);
		send(s, new smpp.PDU('unbind'), () => s.close());
		return;
	}
	case 'raw':
		pick(cmd).socket.write(Buffer.from(cmd.hex, 'hex'));
		emit({ev: 'raw_sent', hex: cmd.hex});
		return;
	case 'close':
		pick(cmd).destroy();
		return;
	case 'exit':
		shutdown(0);
		return;
	}
	throw new Error('unknown command ' + cmd.cmd);
}

function shutdown(code) {
	sessions.forEach((s) => s.destroy());
	server.close();
	lib.exitSoon(code);
}

server.on('error', (e) => {
	emit({ev: 'error', error: String(e && e.message || e)});
	shutdown(1);
});

server.listen(0, '127.0.0.1', () => {
	emit({ev: 'listening', port: server.address().port, node_smpp: lib.version, node: process.version});
});

lib.lifetime(+(a.lifetime || 20000), shutdown);
lib.commands(run);
