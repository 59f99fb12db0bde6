#!/usr/bin/perl
# smsc.pl: a Net::SMPP SMSC for optgate's interop tests.
#
#   perl smsc.pl [--system-id ID] [--password PW] [--lifetime S]
#
# Listens with Net::SMPP->new_listen on 127.0.0.1 and a free port, prints
# {"ev":"listening","port":N,"net_smpp":VERSION}, and serves one connection
# at a time: a bind with the right system_id/password is answered ESME_ROK
# with system_id "perlsmsc" ({"ev":"bound","mode":M}), a wrong one
# ESME_RINVPASWD or ESME_RINVSYSID; submit_sm gets message ids perl-1,
# perl-2, ...; enquire_link and unbind are answered; other requests get
# generic_nack. Commands on stdin, one JSON object a line:
#   {"cmd":"deliver","pdu":{...},"short_message_hex":H,"tlvs":[[name,hex],...]}
#   {"cmd":"enquire_link"}  {"cmd":"unbind"}  {"cmd":"exit"}
# Every PDU is logged (OptgateSMPP).
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use OptgateSMPP;

my %a = OptgateSMPP::args(@ARGV);
my $sys = $a{'system-id'} // 'optgate';
my $pw = $a{password} // 'secret';
my $deadline = time + ($a{lifetime} || 30);

my $l = OptgateSMPP->new_listen('127.0.0.1', port => 0, listen => 8) or die "listen: $!\n";
OptgateSMPP::emit(ev => 'listening', port => $l->sockport, net_smpp => $Net::SMPP::VERSION);

my $conn;
my $ids = 0;
sub closed {
	close $conn if $conn;
	$conn = undef;
	OptgateSMPP::emit(ev => 'close');
}

my $why = OptgateSMPP::loop(
	deadline => $deadline,
	socks => sub { $conn ? ($conn) : ($l) },
	on_cmd => sub {
		my ($c) = @_;
		return 'exit' if $c->{cmd} eq 'exit';
		if (!$conn) {
			OptgateSMPP::emit(ev => 'error', error => "no connection for $c->{cmd}");
		} elsif ($c->{cmd} eq 'deliver') {
			my $seq = $conn->deliver_sm(async => 1, OptgateSMPP::sm_args($c));
			OptgateSMPP::emit(ev => 'sent', sequence_number => $seq);
		} elsif ($c->{cmd} eq 'enquire_link') {
			$conn->enquire_link(async => 1);
		} elsif ($c->{cmd} eq 'unbind') {
			$conn->unbind(async => 1);
		} else {
			OptgateSMPP::emit(ev => 'error', error => "unknown command $c->{cmd}");
		}
		return;
	},
	on_sock => sub {
		my ($fh) = @_;
		if (!$conn) {
			$conn = $l->accept or return;
			OptgateSMPP::emit(ev => 'accept');
			return;
		}
		my $pdu = $conn->read_pdu();
		if (!$pdu) {
			closed();
			return;
		}
		my $cmd = $pdu->{cmd};
		my $name = OptgateSMPP::cmd_name($cmd);
		if ($name =~ /^bind_(transmitter|receiver|transceiver)$/) {
			my $mode = $1;
			my $st = $pdu->{system_id} ne $sys ? 0x0f : $pdu->{password} ne $pw ? 0x0e : 0;
			my $m = "${name}_resp";
			$conn->$m(seq => $pdu->{seq}, status => $st, system_id => 'perlsmsc');
			OptgateSMPP::emit(ev => 'bound', mode => $mode) if !$st;
		} elsif ($cmd == Net::SMPP::CMD_submit_sm) {
			$ids++;
			$conn->submit_sm_resp(seq => $pdu->{seq}, message_id => "perl-$ids");
		} elsif ($cmd == Net::SMPP::CMD_enquire_link) {
			$conn->enquire_link_resp(seq => $pdu->{seq});
		} elsif ($cmd == Net::SMPP::CMD_unbind) {
			$conn->unbind_resp(seq => $pdu->{seq});
			closed();
		} elsif ($cmd == Net::SMPP::CMD_unbind_resp) {
			closed();
		} elsif (!($cmd & 0x80000000)) {
			$conn->generic_nack(seq => $pdu->{seq}, status => 3);
		}
		return;
	});
OptgateSMPP::emit(ev => 'exit', why => $why);
exit 0;
