'use strict';
// golden.js: writes the node-smpp golden vectors in smpp/testdata/golden.
//
//   node golden.js           (re)write the *.hex files made by node-smpp
//   node golden.js --print   print {"name": "hex", ...} instead (the Go test
//                            TestGoldenFilesAreNodeSMPPOutput compares them
//                            with the committed files)
//
// Each PDU is built with node-smpp's PDU class and encoded with toBuffer(),
// the same path Session.send takes, with the options server.js and
// client.js use in the interop tests. Files written by hand (the ugly cases)
// say so in their header and are not touched.

const fs = require('fs');
const path = require('path');
const lib = require('./lib');
const {smpp, PDU} = lib;

const gsmText = 'Hi @home_now, £5 off! Reply STOP';
const ucs2Text = 'ARRÊT 😀';
const receipt = 'id:node-1 sub:001 dlvrd:001 submit date:2411221030 done date:2411221031 stat:DELIVRD err:000 text:Hi';

function pdu(command, options) {
	return new PDU(command, options).toBuffer();
}

const vectors = {
	bind_transceiver: pdu('bind_transceiver', {sequence_number: 1, system_id: 'optgate', password: 'secret'}),
	bind_transceiver_resp: pdu('bind_transceiver_resp', {sequence_number: 1, system_id: 'node-smsc'}),
	bind_transceiver_resp_invpaswd: pdu('bind_transceiver_resp', {sequence_number: 1, command_status: smpp.ESME_RINVPASWD}),
	submit_sm_gsm7: pdu('submit_sm', {sequence_number: 2, source_addr_ton: 5, source_addr: 'optgate',
		dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: '33612345678', registered_delivery: 1,
		data_coding: 0, short_message: gsmText}),
	submit_sm_ucs2: pdu('submit_sm', {sequence_number: 3, dest_addr_ton: 1, dest_addr_npi: 1,
		destination_addr: '33612345678', data_coding: 8, short_message: ucs2Text}),
	submit_sm_udh: pdu('submit_sm', {sequence_number: 4, dest_addr_ton: 1, dest_addr_npi: 1,
		destination_addr: '33612345678', data_coding: 0,
		short_message: {udh: Buffer.from('050003a70301', 'hex'), message: 'Part one of three'}}),
	submit_sm_resp: pdu('submit_sm_resp', {sequence_number: 2, message_id: 'node-1'}),
	submit_sm_resp_empty_id: pdu('submit_sm_resp', {sequence_number: 2, message_id: ''}),
	submit_sm_resp_invdstadr: pdu('submit_sm_resp', {sequence_number: 2, command_status: smpp.ESME_RINVDSTADR}),
	deliver_sm_receipt: pdu('deliver_sm', {sequence_number: 5, source_addr_ton: 1, source_addr_npi: 1,
		source_addr: '33612345678', destination_addr: 'optgate', esm_class: 4, data_coding: 0,
		short_message: receipt, receipted_message_id: 'node-1', message_state: 2,
		network_error_code: Buffer.from('030000', 'hex')}),
	deliver_sm_mo_ucs2: pdu('deliver_sm', {sequence_number: 6, source_addr_ton: 1, source_addr_npi: 1,
		source_addr: '33612345678', destination_addr: '12345', data_coding: 8, short_message: ucs2Text}),
	deliver_sm_resp: pdu('deliver_sm_resp', {sequence_number: 5}),
	enquire_link_max_seq: pdu('enquire_link', {sequence_number: 0x7FFFFFFF}),
	enquire_link_resp: pdu('enquire_link_resp', {sequence_number: 0x7FFFFFFF}),
	unbind: pdu('unbind', {sequence_number: 7}),
	unbind_resp: pdu('unbind_resp', {sequence_number: 7}),
	// node-smpp's answer to a command_id it does not know (0x00000099).
	generic_nack: new PDU(Buffer.from('00000010000000990000000000000008', 'hex')).response().toBuffer(),
};
// Two PDUs as node-smpp writes them back to back (one read on our side).
vectors.two_pdus = Buffer.concat([vectors.enquire_link_resp, vectors.submit_sm_resp]);

const hex = {};
for (const k of Object.keys(vectors)) {
	hex[k] = vectors[k].toString('hex');
}

if (process.argv.includes('--print')) {
	process.stdout.write(JSON.stringify({node_smpp: lib.version, vectors: hex}) + '\n');
} else {
	const dir = path.join(__dirname, '..', 'golden');
	fs.mkdirSync(dir, {recursive: true});
	for (const k of Object.keys(hex)) {
		const lines = ['# produced by node-smpp ' + lib.version + ' via smpp/testdata/node/golden.js (' + k + ')'];
		for (let i = 0; i < hex[k].length; i += 64) {
			lines.push(hex[k].slice(i, i + 64));
		}
		fs.writeFileSync(path.join(dir, k + '.hex'), lines.join('\n') + '\n');
	}
	process.stdout.write('wrote ' + Object.keys(hex).length + ' files to ' + dir + '\n');
}
