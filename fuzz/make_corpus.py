#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/.

The files are committed; rerun this only when a format changes (scripts/fuzz.sh
replays the seeds first and says so when one no longer decodes):

    python3 fuzz/make_corpus.py

Each seed is a small valid input, built here byte by byte from the format it
exercises: DNS queries (RFC 1035, EDNS from RFC 6891), master files, the Lite sync
frames of core/tests/sync-vectors.txt, Raft RPCs in postcard (the layout of
appliance/src/store/network/codec.rs and openraft's serde derives), join tickets.
"""

import base64
import hashlib
import hmac
import pathlib
import shutil
import struct

FUZZ = pathlib.Path(__file__).resolve().parent
REPO = FUZZ.parent
CORPUS = FUZZ / "corpus"


def write(target, name, data):
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (directory / name).write_bytes(data)


# --- dns_message: queries as a client sends them ------------------------------

def dns_name(text):
    out = b""
    for label in text.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def opt_record(payload=1232, version=0, dnssec_ok=False, options=b""):
    """The EDNS OPT pseudo-record (RFC 6891 section 6.1.2)."""
    ttl = (version << 16) | (0x8000 if dnssec_ok else 0)
    return b"\0" + struct.pack(">HHIH", 41, payload, ttl, len(options)) + options


def dns_query(qname, qtype, qclass=1, opcode=0, rd=True, cd=False, opt=None, qid=0x1234):
    flags = (opcode << 11) | (0x0100 if rd else 0) | (0x0010 if cd else 0)
    header = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 1 if opt else 0)
    return header + dns_name(qname) + struct.pack(">HH", qtype, qclass) + (opt or b"")


# The TSIG key of fuzz_targets/dns_message.rs: name, base64 secret.
FUZZ_KEY = ("fuzz.", "ZnV6emluZyBrZXkgb2Ygb3V0cG9zdA==")


def ixfr_query(zone, serial, qid=0x1234):
    """IXFR (RFC 1995): the client's SOA in the authority section."""
    header = struct.pack(">HHHHHH", qid, 0, 1, 0, 1, 0)
    rdata = dns_name("ns1." + zone) + dns_name("hostmaster." + zone) + struct.pack(">IIIII", serial, 1, 1, 1, 1)
    soa = dns_name(zone) + struct.pack(">HHIH", 6, 1, 0, len(rdata)) + rdata
    return header + dns_name(zone) + struct.pack(">HH", 251, 1) + soa


def tsig_signed(message, key=FUZZ_KEY, time=1_700_000_000):
    """`message` with a TSIG record (RFC 8945 section 4.3.3), hmac-sha256."""
    name, secret = key
    algorithm = dns_name("hmac-sha256.")
    qid = message[:2]
    variables = dns_name(name) + struct.pack(">HI", 255, 0) + algorithm
    timers = struct.pack(">HIH", time >> 32, time & 0xFFFFFFFF, 300)
    mac = hmac.new(base64.b64decode(secret), message + variables + timers + struct.pack(">HH", 0, 0), hashlib.sha256).digest()
    rdata = algorithm + timers + struct.pack(">H", len(mac)) + mac + qid + struct.pack(">HH", 0, 0)
    record = dns_name(name) + struct.pack(">HHIH", 250, 255, 0, len(rdata)) + rdata
    arcount = struct.unpack(">H", message[10:12])[0] + 1
    return message[:10] + struct.pack(">H", arcount) + message[12:] + record


def dns_message():
    write("dns_message", "a-rd", dns_query("www.example.internal.", 1))
    write("dns_message", "aaaa-edns-do", dns_query("www.example.internal.", 28, opt=opt_record(dnssec_ok=True)))
    cookie = struct.pack(">HH", 10, 8) + bytes(range(1, 9))
    write("dns_message", "https-cd-cookie", dns_query("example.internal.", 65, cd=True, opt=opt_record(4096, options=cookie)))
    write("dns_message", "mx-edns-version-1", dns_query("example.internal.", 15, opt=opt_record(version=1)))
    write("dns_message", "txt-chaos", dns_query("version.bind.", 16, qclass=3))
    write("dns_message", "axfr", dns_query("example.internal.", 252, rd=False))
    write("dns_message", "notify-soa", dns_query("example.internal.", 6, opcode=4, rd=False))
    write("dns_message", "ixfr", ixfr_query("example.internal.", 1))
    write("dns_message", "axfr-tsig", tsig_signed(dns_query("example.internal.", 252, rd=False)))
    write("dns_message", "soa-tsig", tsig_signed(dns_query("example.internal.", 6, rd=False)))


# --- zone_file: master files for example.internal. ----------------------------

ZONE_FULL = """\
$ORIGIN example.internal.
$TTL 1h
@   IN  SOA ns1 hostmaster (
        2024060101 ; serial
        2h         ; refresh
        30m        ; retry
        2w         ; expire
        5m )       ; negative TTL
    IN  NS  ns1
    IN  NS  ns2.example.internal.
    IN  MX  10 mail
    IN  TXT "v=spf1 mx -all" "second \\"quoted\\" string"
ns1 IN  A   192.0.2.53
ns2 300 IN A 192.0.2.54
www     A   192.0.2.80
        AAAA 2001:db8::80
mail 1h30m IN A 192.0.2.25
ftp CNAME www
_sip._udp SRV 10 60 5060 sip.example.internal.
@ CAA 0 issue "ca.example.net"
$ORIGIN lab.example.internal.
printer A 10.0.0.7
"""

ZONE_TYPES = """\
$TTL 300
@ SOA ns1.example.internal. hostmaster.example.internal. 1 7200 3600 1209600 300
@ NS ns1.example.internal.
svc HTTPS 1 . alpn="h2,h3" port=8443
_dns SVCB 1 dns.example.internal. alpn=dot
@ NAPTR 100 10 "S" "SIP+D2U" "" _sip._udp
host SSHFP 1 1 0123456789abcdef0123456789abcdef01234567
_443._tcp TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
box HINFO "x86_64" "Linux"
7 PTR host.example.internal.
raw TYPE65280 \\# 4 0a000001
"""

ZONE_SMALL = """\
@ 3600 IN SOA ns1 hostmaster 1 7200 3600 1209600 300
@ NS ns1
ns1 A 192.0.2.1
"""


def zone_file():
    write("zone_file", "full.zone", ZONE_FULL)
    write("zone_file", "types.zone", ZONE_TYPES)
    write("zone_file", "small.zone", ZONE_SMALL)


# --- sync_frame: the pinned protocol vectors, one frame each ------------------

def sync_frame():
    vectors = (REPO / "core" / "tests" / "sync-vectors.txt").read_text()
    changes_body = None
    for line in vectors.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, frame_hex = line.split()
        frame = bytes.fromhex(frame_hex)
        write("sync_frame", name, frame)
        if name == "changes":
            changes_body = frame[10:]
    # Frame type 11 (protocol 3) has no vector: `after` (1002) then the Changes body.
    body = varint(1002) + changes_body
    write("sync_frame", "changes-after", b"OPST" + struct.pack(">HI", 11, len(body)) + body)


# --- raft_rpc: postcard, after the version byte 1 -----------------------------

def varint(n):
    out = b""
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def text(s):
    data = s.encode()
    return varint(len(data)) + data


def u64s(*values):
    return b"".join(varint(v) for v in values)


def vote(term, node, committed):
    """openraft's Vote: leader id (term, node id), then `committed`."""
    return u64s(term, node) + bytes([committed])


def log_id(term, node, index):
    return u64s(term, node, index)


def some(data):
    return b"\x01" + data


NONE = b"\x00"

# Variant indexes of RaftRequest, RaftReply and outpost_core::zones::Command.
REQUEST = {"AppendEntries": 0, "Vote": 1, "PreVote": 2, "ClientWrite": 4, "Join": 5,
           "RemoveNode": 6, "Progress": 7, "ReadIndex": 8, "SetAddress": 9}
REPLY = {"Vote": 1, "Unavailable": 4, "SnapshotChunkStored": 5, "Join": 8, "ReadIndex": 11}
COMMAND = {"DeleteZone": 2, "AddRecords": 3, "RevokeLiteToken": 7, "Batch": 10}

# The ed25519 base point, compressed: a valid endpoint id (iroh prints it in hex).
ENDPOINT_ID = "58" + "66" * 31
# www.example.internal. 300 IN A 10.0.0.7, in the wire format of outpost_core::wire.
A_RECORD = dns_name("www.example.internal.") + struct.pack(">HHIH", 1, 1, 300, 4) + bytes([10, 0, 0, 7])


def raft(kind, body=b""):
    return b"\x01" + varint(kind) + body


def raft_rpc():
    vote_request = vote(3, 2, 0) + some(log_id(2, 1, 17)) + b"\x00"
    write("raft_rpc", "request-vote", raft(REQUEST["Vote"], vote_request))
    write("raft_rpc", "request-pre-vote", raft(REQUEST["PreVote"], vote_request))
    heartbeat = vote(3, 2, 1) + some(log_id(2, 1, 17)) + varint(0) + some(log_id(3, 2, 17))
    write("raft_rpc", "request-heartbeat", raft(REQUEST["AppendEntries"], heartbeat))
    # One Normal entry (payload variant 1) holding a DeleteZone command.
    entry = log_id(3, 2, 18) + varint(1) + varint(COMMAND["DeleteZone"]) + text("old.internal.")
    append = vote(3, 2, 1) + some(log_id(3, 2, 17)) + varint(1) + entry + some(log_id(3, 2, 17))
    write("raft_rpc", "request-append-entries", raft(REQUEST["AppendEntries"], append))
    add = varint(COMMAND["AddRecords"]) + varint(len(A_RECORD)) + A_RECORD
    write("raft_rpc", "request-client-write", raft(REQUEST["ClientWrite"], add))
    batch = (varint(COMMAND["Batch"]) + varint(2)
             + varint(COMMAND["DeleteZone"]) + text("old.internal.")
             + varint(COMMAND["RevokeLiteToken"]) + text("laptop-7"))
    write("raft_rpc", "request-client-write-batch", raft(REQUEST["ClientWrite"], batch))
    join = bytes([9] * 32) + varint(1234567) + text(f"{ENDPOINT_ID}@192.0.2.10:7400")
    write("raft_rpc", "request-join", raft(REQUEST["Join"], join))
    write("raft_rpc", "request-remove-node", raft(REQUEST["RemoveNode"], varint(5)))
    write("raft_rpc", "request-progress", raft(REQUEST["Progress"]))
    write("raft_rpc", "request-read-index", raft(REQUEST["ReadIndex"]))
    address = varint(2) + text(f"{ENDPOINT_ID}@[2001:db8::2]:7400")
    write("raft_rpc", "request-set-address", raft(REQUEST["SetAddress"], address))
    granted = vote(3, 2, 0) + b"\x01" + some(log_id(2, 1, 17))
    write("raft_rpc", "reply-vote", raft(REPLY["Vote"], granted))
    write("raft_rpc", "reply-unavailable", raft(REPLY["Unavailable"], text("raft stopped")))
    write("raft_rpc", "reply-snapshot-chunk-stored", raft(REPLY["SnapshotChunkStored"]))
    # JoinOutcome::NotLeader { leader: Some((1, address)) }.
    not_leader = varint(1) + some(varint(1) + text(f"{ENDPOINT_ID}@192.0.2.1:7400"))
    write("raft_rpc", "reply-join-not-leader", raft(REPLY["Join"], not_leader))
    # Ok(42): Result is an enum whose Ok is variant 0.
    write("raft_rpc", "reply-read-index", raft(REPLY["ReadIndex"], varint(0) + varint(42)))


# --- join_ticket: what `outpost cluster invite` prints --------------------------

def ticket(cluster_id, nodes, secret_byte, expires_unix):
    body = text(cluster_id) + varint(len(nodes))
    for node_id, address in nodes:
        body += varint(node_id) + text(address)
    body += bytes([secret_byte] * 32) + varint(expires_unix)
    return "outpost-join-v1:" + base64.urlsafe_b64encode(body).decode().rstrip("=")


def join_ticket():
    one = ticket("c0ffee", [(1, f"{ENDPOINT_ID}@127.0.0.1:7400")], 9, 1_900_000_000)
    write("join_ticket", "one-node", one)
    three = ticket(
        "3f2a9c1e",
        [(1, f"{ENDPOINT_ID}@192.0.2.1:7400"),
         (548_299_775_012, f"{ENDPOINT_ID}@[2001:db8::2]:7400"),
         (91_235_004_117, f"{ENDPOINT_ID}@192.0.2.3:17400")],
        0xA5,
        1_780_000_000,
    )
    write("join_ticket", "three-nodes", three)
    # Pasted with the blanks around it that a terminal adds.
    write("join_ticket", "pasted-with-blanks", f"  {one}\n")


# --- export_document: an export's ticket, and a document's head -----------------

def export_ticket(cluster_id, export, peers):
    body = text(cluster_id) + text(export) + bytes([7] * 32) + bytes([9] * 32)
    body += varint(len(peers))
    for addresses in peers:
        body += bytes.fromhex(ENDPOINT_ID) + varint(len(addresses))
        for ip, port in addresses:
            # SocketAddr::V4: the variant, the four octets, the port.
            body += varint(0) + bytes(ip) + varint(port)
    return "outpost-export-v1:" + base64.urlsafe_b64encode(body).decode().rstrip("=")


def export_head(cluster_id, index, zones, keys):
    body = varint(1) + text(cluster_id) + varint(index) + varint(len(zones))
    for zone in zones:
        body += text(zone)
    body += varint(len(keys))
    for key, length in keys:
        body += varint(len(key)) + key + bytes([0x5A] * 32) + varint(length)
    return body


def zone_key(origin, bucket):
    return b"z" + struct.pack(">H", len(origin)) + origin.encode() + bytes([bucket])


def export_document():
    write("export_document", "ticket-one-peer", export_ticket("c0ffee", "field-kit", [[((192, 0, 2, 1), 7470)]]))
    write("export_document", "ticket-two-peers",
          export_ticket("3f2a9c1e", "kit", [[((127, 0, 0, 1), 7470)], [((192, 0, 2, 9), 1), ((10, 1, 2, 3), 65535)]]))
    plugin = b"d" + bytes([6]) + b"policy" + bytes([3]) + b"ads"
    write("export_document", "head-two-zones",
          export_head("c0ffee", 42, ["site.internal.", "lab.internal."],
                      [(plugin, 900), (zone_key("site.internal.", 0), 120), (zone_key("site.internal.", 255), 64),
                       (zone_key("lab.internal.", 7), 300)]))
    write("export_document", "head-empty", export_head("c0ffee", 1, [], []))


def main():
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    dns_message()
    zone_file()
    sync_frame()
    raft_rpc()
    join_ticket()
    export_document()
    for directory in sorted(CORPUS.iterdir()):
        files = list(directory.iterdir())
        size = sum(f.stat().st_size for f in files)
        print(f"{directory.relative_to(FUZZ)}: {len(files)} files, {size} bytes")


if __name__ == "__main__":
    main()
