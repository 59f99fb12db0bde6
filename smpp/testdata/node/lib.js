'use strict';
// Shared helpers for the node-smpp peers used by optgate's interop tests
// (smpp/interop_test.go), golden vectors (golden.js) and bench/node.
//
// Every script prints one JSON object per line on stdout. PDUs are logged as
//   {"ev":"pdu","dir":"in"|"out","command":"submit_sm","command_id":4,
//    "command_status":0,"sequence_number":2,"hex":"<the whole PDU>",
//    "fields":{...what node-smpp decoded...},"message":{"text":..,"udh":[..],"hex":..}}
// "hex" of a received PDU is the exact octets node-smpp read from the socket
// (captured by wrapping PDU.fromStream); of a sent PDU, the exact octets
// node-smpp wrote (captured by wrapping PDU.prototype.toBuffer).

const smpp = require('smpp');
const version = require('smpp/package.json').version;

const PDU = smpp.PDU;

// Keep the raw octets of every PDU read from a stream.
PDU.fromStream = function(stream, commandLength) {
	const body = stream.read(commandLength - 4);
	if (!body) {
		return false;
	}
	const len = Buffer.alloc(4);
	len.writeUInt32BE(commandLength, 0);
	const raw = Buffer.concat([len, body]);
	const pdu = new PDU(raw);
	Object.defineProperty(pdu, '_raw', {value: raw, enumerable: false, writable: true});
	return pdu;
};

// Keep the raw octets of every PDU encoded for sending.
const toBuffer = PDU.prototype.toBuffer;
PDU.prototype.toBuffer = function() {
	const b = toBuffer.call(this);
	Object.defineProperty(this, '_raw', {value: b, enumerable: false, writable: true});
	return b;
};

function emit(obj) {
	process.stdout.write(JSON.stringify(obj) + '\n');
}

// plain turns node-smpp's decoded values into JSON: Buffers become hex,
// Dates ISO strings.
function plain(v) {
	if (Buffer.isBuffer(v)) {
		return v.toString('hex');
	}
	if (v instanceof Date) {
		return isNaN(v.getTime()) ? null : v.toISOString();
	}
	if (Array.isArray(v)) {
		return v.map(plain);
	}
	if (v && typeof v === 'object') {
		const o = {};
		for (const k of Object.keys(v)) {
			o[k] = plain(v[k]);
		}
		return o;
	}
	return v;
}

const headerKeys = new Set(['command', 'command_id', 'command_length', 'command_status', 'sequence_number']);

function describe(pdu, dir) {
	const out = {
		ev: 'pdu',
		dir: dir,
		command: pdu.command,
		command_id: pdu.command_id,
		command_status: pdu.command_status,
		sequence_number: pdu.sequence_number,
		hex: pdu._raw ? pdu._raw.toString('hex') : null,
		fields: {},
	};
	for (const k of Object.keys(pdu)) {
		if (headerKeys.has(k)) {
			continue;
		}
		const v = pdu[k];
		if ((k === 'short_message' || k === 'message_payload') && v && !Buffer.isBuffer(v) && typeof v === 'object') {
			// node-smpp decodes short_message into {udh?: [Buffer], message: string|Buffer}.
			const m = {};
			if (typeof v.message === 'string') {
				m.text = v.message;
			} else if (Buffer.isBuffer(v.message)) {
				m.hex = v.message.toString('hex');
			}
			if (v.udh) {
				m.udh = v.udh.map((b) => b.toString('hex'));
			}
			if (k === 'short_message') {
				out.message = m;
			} else {
				out.payload = m;
			}
			continue;
		}
		out.fields[k] = plain(v);
	}
	return out;
}

// buildOptions turns a JSON description into node-smpp PDU options.
// short_message may be {"text": "...", "udh": "hex"} (node-smpp encodes the
// text by data_coding), {"hex": "..."} (sent as is) or a plain string.
function buildOptions(desc) {
	const o = Object.assign({}, desc);
	const sm = o.short_message;
	if (sm && typeof sm === 'object') {
		if (sm.hex !== undefined) {
			o.short_message = Buffer.from(sm.hex, 'hex');
			if (sm.udh) {
				o.short_message = {udh: Buffer.from(sm.udh, 'hex'), message: o.short_message};
			}
		} else if (sm.udh) {
			o.short_message = {udh: Buffer.from(sm.udh, 'hex'), message: sm.text};
		} else {
			o.short_message = sm.text;
		}
	}
	for (const k of ['network_error_code', 'message_payload']) {
		if (typeof o[k] === 'string') {
			o[k] = Buffer.from(o[k], 'hex');
		}
	}
	return o;
}

// args parses --key value and --flag arguments.
function args(argv) {
	const a = {};
	for (let i = 0; i < argv.length; i++) {
		const k = argv[i];
		if (!k.startsWith('--')) {
			continue;
		}
		const name = k.slice(2);
		if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
			a[name] = argv[++i];
		} else {
			a[name] = true;
		}
	}
	return a;
}

// lifetime makes the process end by itself after ms and when stdin closes.
function lifetime(ms, onEnd) {
	const t = setTimeout(() => {
		emit({ev: 'timeout', after_ms: ms});
		onEnd(3);
	}, ms);
	process.stdin.on('end', () => {
		emit({ev: 'stdin_closed'});
		onEnd(0);
	});
	return t;
}

// commands reads JSON commands, one a line, from stdin.
function commands(fn) {
	let buf = '';
	process.stdin.setEncoding('utf8');
	process.stdin.on('data', (chunk) => {
		buf += chunk;
		let i;
		while ((i = buf.indexOf('\n')) >= 0) {
			const line = buf.slice(0, i).trim();
			buf = buf.slice(i + 1);
			if (!line) {
				continue;
			}
			let cmd;
			try {
				cmd = JSON.parse(line);
			} catch (e) {
				emit({ev: 'error', error: 'bad command: ' + e.message, line: line});
				continue;
			}
			try {
				fn(cmd);
			} catch (e) {
				emit({ev: 'error', error: String(e && e.stack || e), cmd: cmd});
			}
		}
	});
}

// exitSoon flushes stdout, then exits.
function exitSoon(code) {
	process.stdout.write('', () => process.exit(code));
}

module.exports = {smpp, PDU, version, emit, describe, buildOptions, args, lifetime, commands, exitSoon, plain};
