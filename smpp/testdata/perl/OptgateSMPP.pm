# OptgateSMPP: the Net::SMPP (libnet-smpp-perl) peer for optgate's interop
# tests, shared by esme.pl and smsc.pl.
#
# It subclasses Net::SMPP only to log: every PDU written (syswrite) or read
# (read_pdu) is printed as one JSON line on stdout,
#   {"ev":"pdu","dir":"out"|"in","command":NAME,"command_status":N,
#    "sequence_number":N,"hex":RAW,"fields":{NAME:HEX,...}}
# where fields (read PDUs only) is what Net::SMPP decoded, each value
# hex-encoded so that the Go side compares octets, not Perl strings.
# Encoding and decoding are Net::SMPP's own.
package OptgateSMPP;

use strict;
use warnings;
use Net::SMPP;
use JSON::PP;
use IO::Select;

our @ISA = ('Net::SMPP');

my $json = JSON::PP->new->canonical;

sub emit {
	my %h = @_;
	local $| = 1;
	print $json->encode(\%h), "\n";
}

sub cmd_name {
	my ($id) = @_;
	my $t = Net::SMPP::pdu_tab->{$id};
	return $t ? $t->{cmd} : sprintf('command(0x%08x)', $id);
}

# syswrite is how Net::SMPP sends every PDU (header and body in one call).
sub syswrite {
	my ($me, $buf) = @_;
	my ($len, $cmd, $status, $seq) = unpack 'NNNN', $buf;
	emit(ev => 'pdu', dir => 'out', command => cmd_name($cmd), command_status => $status,
		sequence_number => $seq, hex => unpack('H*', $buf));
	return $me->SUPER::syswrite($buf);
}

sub read_pdu {
	my $me = shift;
	my $pdu = $me->SUPER::read_pdu();
	if (!$pdu) {
		emit(ev => 'read_end', error => (${*$me}{smpperror} // "$!"));
		return undef;
	}
	my $raw = pack('NNNN', 16 + length($pdu->{data}), $pdu->{cmd}, $pdu->{status}, $pdu->{seq}) . $pdu->{data};
	my %f;
	for my $k (keys %$pdu) {
		next if $k =~ /^(data|cmd|status|seq|known_pdu|reserved)$/;
		next unless defined $pdu->{$k};
		$f{$k} = unpack('H*', "$pdu->{$k}");
	}
	emit(ev => 'pdu', dir => 'in', command => cmd_name($pdu->{cmd}), command_status => $pdu->{status},
		sequence_number => $pdu->{seq}, hex => unpack('H*', $raw), fields => \%f);
	return $pdu;
}

# args parses --name value pairs.
sub args {
	my %a;
	while (@_) {
		my $k = shift;
		$k =~ s/^--// or die "bad argument $k\n";
		$a{$k} = shift;
	}
	return %a;
}

# sm_args turns a JSON command {"pdu":{...},"short_message_hex":H,
# "tlvs":[[name,hex],...]} into Net::SMPP's argument list: mandatory
# fields by name, then the optional parameters in the given order.
sub sm_args {
	my ($c) = @_;
	my @a = %{ $c->{pdu} || {} };
	push @a, short_message => pack('H*', $c->{short_message_hex}) if defined $c->{short_message_hex};
	for my $t (@{ $c->{tlvs} || [] }) {
		push @a, $t->[0], pack('H*', $t->[1]);
	}
	return @a;
}

# loop waits on the SMPP socket(s) and stdin until $deadline (epoch
# seconds) or until a handler returns 'exit'. $socks is a code ref giving
# the sockets to watch; $on_sock($sock) runs when one is readable and
# $on_cmd($hashref) for each JSON line on stdin. EOF on stdin ends the loop.
sub loop {
	my (%o) = @_;
	my $in = '';
	while (time < $o{deadline}) {
		my $sel = IO::Select->new(\*STDIN, $o{socks}->());
		my @ready = $sel->can_read(0.2);
		for my $fh (@ready) {
			if ($fh == \*STDIN) {
				my $n = sysread(STDIN, $in, 65536, length $in);
				return 'stdin_closed' if !$n;
				while ($in =~ s/^([^\n]*)\n//) {
					next if $1 eq '';
					my $c = eval { $json->decode($1) };
					if (!$c) {
						emit(ev => 'error', error => "bad command: $1");
						next;
					}
					my $r = $o{on_cmd}->($c);
					return $r if defined $r && $r eq 'exit';
				}
			} else {
				my $r = $o{on_sock}->($fh);
				return $r if defined $r && $r eq 'exit';
			}
		}
	}
	return 'lifetime';
}

1;
