#!/usr/bin/perl
# esme.pl: a Net::SMPP ESME for optgate's interop tests.
#
#   perl esme.pl --port N [--host 127.0.0.1] [--mode transceiver|transmitter|receiver]
#                [--system-id ID] [--password PW] [--deliver-status N] [--lifetime S]
#
# Binds with Net::SMPP->new_<mode> (synchronously, as Net::SMPP does), prints
# {"ev":"bound","system_id":HEX} or {"ev":"bind_failed","command_status":N},
# then reads JSON commands on stdin, one a line, sending each request
# asynchronously:
#   {"cmd":"submit","pdu":{...},"short_message_hex":H,"tlvs":[[name,hex],...]}
#   {"cmd":"enquire_link"}  {"cmd":"unbind"}  {"cmd":"exit"}
# deliver_sm from the SMSC is answered with --deliver-status (default 0),
# enquire_link and unbind are answered. Every PDU is logged (OptgateSMPP).
# It exits after --lifetime seconds (default 30), when stdin closes, after
# its unbind is answered, or when the connection ends.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use OptgateSMPP;

my %a = OptgateSMPP::args(@ARGV);
my $mode = $a{mode} || 'transceiver';
my $deliver_status = $a{'deliver-status'} || 0;
my $deadline = time + ($a{lifetime} || 30);

my $ctor = "new_$mode";
my ($smpp, $resp) = OptgateSMPP->$ctor($a{host} || '127.0.0.1',
	port => $a{port},
	system_id => $a{'system-id'} // 'optgate',
	password => $a{password} // 'secret',
	(defined $a{'interface-version'} ? (interface_version => $a{'interface-version'}) : ()),
	timeout => 5);
if (!$smpp) {
	OptgateSMPP::emit(ev => 'error', error => "connect: $!");
	exit 1;
}
if (!$resp) {
	OptgateSMPP::emit(ev => 'error', error => 'no bind response: ' . (${*$smpp}{smpperror} // ''));
	exit 1;
}
if ($resp->status) {
	OptgateSMPP::emit(ev => 'bind_failed', command_status => $resp->status);
	close $smpp;
	OptgateSMPP::emit(ev => 'close');
	exit 0;
}
OptgateSMPP::emit(ev => 'bound', mode => $mode, system_id => unpack('H*', $resp->{system_id} // ''),
	sc_interface_version => unpack('H*', $resp->{sc_interface_version} // ''));

my $open = 1;
my $why = OptgateSMPP::loop(
	deadline => $deadline,
	socks => sub { $open ? ($smpp) : () },
	on_cmd => sub {
		my ($c) = @_;
		if ($c->{cmd} eq 'submit') {
			my $seq = $smpp->submit_sm(async => 1, OptgateSMPP::sm_args($c));
			OptgateSMPP::emit(ev => 'sent', sequence_number => $seq);
		} elsif ($c->{cmd} eq 'enquire_link') {
			$smpp->enquire_link(async => 1);
		} elsif ($c->{cmd} eq 'unbind') {
			$smpp->unbind(async => 1);
		} elsif ($c->{cmd} eq 'exit') {
			return 'exit';
		} else {
			OptgateSMPP::emit(ev => 'error', error => "unknown command $c->{cmd}");
		}
		return;
	},
	on_sock => sub {
		my $pdu = $smpp->read_pdu();
		if (!$pdu) {
			$open = 0;
			OptgateSMPP::emit(ev => 'close');
			return 'exit';
		}
		my $cmd = $pdu->{cmd};
		if ($cmd == Net::SMPP::CMD_deliver_sm) {
			$smpp->deliver_sm_resp(seq => $pdu->{seq}, status => $deliver_status, message_id => '');
		} elsif ($cmd == Net::SMPP::CMD_enquire_link) {
			$smpp->enquire_link_resp(seq => $pdu->{seq});
		} elsif ($cmd == Net::SMPP::CMD_unbind) {
			$smpp->unbind_resp(seq => $pdu->{seq});
			OptgateSMPP::emit(ev => 'unbound_by_peer');
			close $smpp;
			$open = 0;
			OptgateSMPP::emit(ev => 'close');
			return 'exit';
		} elsif ($cmd == Net::SMPP::CMD_unbind_resp) {
			OptgateSMPP::emit(ev => 'done');
			close $smpp;
			$open = 0;
			OptgateSMPP::emit(ev => 'close');
			return 'exit';
		} elsif (!($cmd & 0x80000000)) {
			$smpp->generic_nack(seq => $pdu->{seq}, status => 3);
		}
		return;
	});
OptgateSMPP::emit(ev => 'exit', why => $why);
exit 0;
