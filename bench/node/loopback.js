'use strict';
// loopback.js: node-smpp client → node-smpp server throughput on 127.0.0.1,
// for comparison with smpp's BenchmarkLoopbackSubmit (our client → our
// server, one bind, window 256, the same submit_sm).
//
//   node bench/node/loopback.js [--messages N] [--window W] [--time-limit MS]
//
// The server runs in a child process (child_process.fork of this file), the
// client here: one bind_transceiver, W submits kept outstanding, N messages
// (default 200000) or until --time-limit (default 60000 ms), whichever comes
// first. Prints one JSON line with msgs/s. node-smpp comes from
// smpp/testdata/node/node_modules (run `npm ci` there first).

const path = require('path');
const {fork} = require('child_process');
const smpp = require(path.join(__dirname, '..', '..', 'smpp', 'testdata', 'node', 'node_modules', 'smpp'));

function args() {
	const a = {};
	const v = process.argv.slice(2);
	for (let i = 0; i < v.length; i++) {
		if (v[i].startsWith('--')) {
			a[v[i].slice(2)] = v[i + 1] && !v[i + 1].startsWith('--') ? v[++i] : true;
		}
	}
	return a;
}

function server() {
	// Ends with its parent: on disconnect or after a hard cap.
	setTimeout(() => process.exit(2), 10 * 60 * 1000).unref();
	process.on('disconnect', () => process.exit(0));
	const srv = smpp.createServer((session) => {
		session.on('pdu', (pdu) => {
			switch (pdu.command) {
			case 'bind_transceiver':
				session.send(pdu.response({system_id: 'bench'}));
				return;
			case 'submit_sm':
				session.send(pdu.response({message_id: '1'}));
				return;
			case 'enquire_link':
				session.send(pdu.response());
				return;
			case 'unbind':
				session.send(pdu.response());
				session.close();
				return;
			}
		});
		session.on('error', () => {});
	});
	srv.listen(0, '127.0.0.1', () => process.send({port: srv.address().port}));
}

function client() {
	const a = args();
	const total = +(a.messages || 200000);
	const window = +(a.window || 256);
	const limitMs = +(a['time-limit'] || 60000);
	const child = fork(__filename, ['--server'], {stdio: ['pipe', 'inherit', 'inherit', 'ipc']});
	const hardStop = setTimeout(() => finish('time limit'), limitMs + 10000);
	let session, start, sent = 0, done = 0, failed = 0, finished = false, stopReason = 'done';

	// The same submit_sm as smpp.benchSubmit in smpp/bench_test.go.
	const submit = {
		source_addr_ton: 1, source_addr_npi: 1, source_addr: '15145550100',
		dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: '33612345678',
		registered_delivery: 1, data_coding: 0,
		short_message: Buffer.from('Your interview is confirmed for Tuesday at 10:00. Reply STOP to opt out'),
		user_message_reference: 42,
	};

	function finish(reason) {
		if (finished) {
			return;
		}
		finished = true;
		clearTimeout(hardStop);
		const micros = (process.hrtime.bigint() - start) / 1000n;
		const el = Number(micros) / 1e6;
		process.stdout.write(JSON.stringify({
			impl: 'node-smpp ' + require(path.join(__dirname, '..', '..', 'smpp', 'testdata', 'node', 'node_modules', 'smpp', 'package.json')).version,
			node: process.version, processes: 2, window: window, messages: done, failed: failed,
			seconds: +el.toFixed(3), msgs_per_s: Math.round(done / el), stopped: reason,
		}) + '\n');
		child.kill();
		if (session) {
			session.destroy();
		}
		process.exit(failed ? 1 : 0);
	}

	function pump() {
		while (sent - done < window && sent < total && !stop) {
			sent++;
			session.send(new smpp.PDU('submit_sm', submit), onResp);
		}
	}

	let stop = false;
	function onResp(pdu) {
		done++;
		if (pdu.command_status !== 0) {
			failed++;
		}
		if (done >= total || (stop && done === sent)) {
			finish(stopReason);
			return;
		}
		pump();
	}

	child.on('message', (m) => {
		session = smpp.connect({host: '127.0.0.1', port: m.port}, () => {
			session.bind_transceiver({system_id: 'bench', password: 'x'}, (r) => {
				if (r.command_status !== 0) {
					console.error('bind failed', r.command_status);
					process.exit(1);
				}
				start = process.hrtime.bigint();
				setTimeout(() => { stop = true; stopReason = 'time limit'; }, limitMs).unref();
				pump();
			});
		});
		session.on('error', (e) => { console.error(e); process.exit(1); });
	});
	child.on('exit', (code) => {
		if (!finished) {
			console.error('server exited', code);
			process.exit(1);
		}
	});
}

if (process.argv.includes('--server')) {
	server();
} else {
	client();
}
