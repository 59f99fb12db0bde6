'use strict';
// client.js: a node-smpp ESME for optgate's interop tests.
//
//   node client.js --port N [--host 127.0.0.1] [--mode transmitter|receiver|transceiver]
//                  [--system-id ID] [--password PW] [--interface-version V]
//                  [--messages JSON] [--enquire-link] [--wait-deliver N] [--hold]
//                  [--lifetime MS]
//
// Binds (system_id/password also from SMPP_SYSTEM_ID / SMPP_PASSWORD), then
// runs a script: optional enquire_link, every submit_sm in --messages (a
// JSON array of node-smpp submit_sm options; see lib.buildOptions for
// short_message) one after another, waits for --wait-deliver deliver_sm,
// and unbinds, unless --hold is given. Every PDU read or written is logged
// (see lib.js), plus {"ev":"bound"}, {"ev":"bind_failed","command_status":n},
// {"ev":"done"} and {"ev":"close"}. deliver_sm, enquire_link and unbind from
// the SMSC are answered (deliver_sm with --deliver-status, default 0).
//
// Commands, one JSON object a line on stdin, work at any time after bind:
//   {"cmd":"submit","pdu":{...}}  {"cmd":"enquire_link"}  {"cmd":"unbind"}
//   {"cmd":"raw","hex":"..."}     {"cmd":"close"}          {"cmd":"exit"}
// The process exits by itself after --lifetime ms (default 20000), when
// stdin closes, and once the connection is closed.

const lib = require('./lib');
const {smpp, emit, describe} = lib;

const a = lib.args(process.argv.slice(2));
const mode = a.mode || 'transceiver';
const messages = a.messages ? JSON.parse(a.messages) : [];
const waitDeliver = +(a['wait-deliver'] || 0);
const deliverStatus = +(a['deliver-status'] || 0);

let delivered = 0;
let bound = false;
let unbinding = false;
let scriptDone = false;
let deliverWaiter = null;

const session = smpp.connect({host: a.host || '127.0.0.1', port: +a.port}, () => {
	emit({ev: 'connect'});
	const bind = {
		system_id: a['system-id'] || process.env.SMPP_SYSTEM_ID || 'optgate',
		password: a.password || process.env.SMPP_PASSWORD || 'secret',
	};
	if (a['interface-version']) {
		bind.interface_version = +a['interface-version'];
	}
	send(new smpp.PDU('bind_' + mode, bind), (resp) => {
		if (resp.command_status !== 0) {
			emit({ev: 'bind_failed', command_status: resp.command_status});
			session.close();
			return;
		}
		bound = true;
		emit({ev: 'bound', mode: mode});
		script();
	});
});

function send(pdu, cb) {
	if (!session.send(pdu, cb)) {
		emit({ev: 'error', error: 'socket not writable', command: pdu.command});
		return false;
	}
	emit(describe(pdu, 'out'));
	return true;
}

function request(command, options) {
	return new Promise((resolve) => {
		if (!send(new smpp.PDU(command, options || {}), resolve)) {
			resolve(null);
		}
	});
}

async function script() {
	if (a['enquire-link']) {
		await request('enquire_link');
	}
	for (const m of messages) {
		await request('submit_sm', lib.buildOptions(m));
	}
	if (delivered < waitDeliver) {
		await new Promise((resolve) => { deliverWaiter = resolve; });
	}
	scriptDone = true;
	emit({ev: 'script_done', delivered: delivered});
	if (!a.hold) {
		unbind();
	}
}

function unbind() {
	if (unbinding) {
		return;
	}
	unbinding = true;
	send(new smpp.PDU('unbind'), () => {
		emit({ev: 'done'});
		session.close();
	});
}

session.on('pdu', (pdu) => {
	emit(describe(pdu, 'in'));
	switch (pdu.command) {
	case 'deliver_sm':
		send(pdu.response({command_status: deliverStatus}));
		delivered++;
		if (deliverWaiter && delivered >= waitDeliver) {
			const w = deliverWaiter;
			deliverWaiter = null;
			w();
		}
		return;
	case 'enquire_link':
		send(pdu.response());
		return;
	case 'unbind':
		unbinding = true;
		send(pdu.response());
		emit({ev: 'unbound_by_peer'});
		session.close();
		return;
	case 'unknown':
		send(pdu.response());
		return;
	}
});

session.on('close', () => {
	emit({ev: 'close', bound: bound, script_done: scriptDone});
	lib.exitSoon(0);
});

session.on('error', (e) => {
	emit({ev: 'session_error', error: String(e && e.message || e)});
});

lib.lifetime(+(a.lifetime || 20000), (code) => {
	session.destroy();
	lib.exitSoon(code);
});

lib.commands((cmd) => {
	switch (cmd.cmd) {
	case 'submit':
		send(new smpp.PDU('submit_sm', lib.buildOptions(cmd.pdu || {})));
		return;
	case 'enquire_link':
		send(new smpp.PDU('enquire_link'));
		return;
	case 'unbind':
		unbind();
		return;
	case 'raw':
		session.socket.write(Buffer.from(cmd.hex, 'hex'));
		emit({ev: 'raw_sent', hex: cmd.hex});
		return;
	case 'close':
		session.destroy();
		return;
	case 'exit':
		session.destroy();
		lib.exitSoon(0);
		return;
	}
	throw new Error('unknown command ' + cmd.cmd);
});
