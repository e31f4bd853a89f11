//! Zone transfers in: the SOA check, AXFR and IXFR from an external primary, as a
//! secondary asks for them (RFC 1995, 5936), signed with TSIG when the zone has a key.
//!
//! Everything a transfer brings is checked before anyone sees it: each message's TSIG in
//! the chain, each record inside the zone, the count under [`MAX_TRANSFER_RECORDS`] and
//! the bytes under [`MAX_TRANSFER_BYTES`], and
//! the closing SOA; a transfer that breaks off, times out or says anything else is an
//! error, and nothing of it is used.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigVerifier, TSigner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::tsig::sign_query;
use crate::message::MAX_TCP_MESSAGE;

/// Most records one transfer may bring (the most one write may carry).
pub const MAX_TRANSFER_RECORDS: usize = outpost_core::wire::MAX_RECORDS_PER_BLOB;
/// Most bytes of messages one transfer may bring: the largest write a cluster takes (a
/// Raft entry of 16 MiB), so a primary cannot make us hold more than we could apply.
pub const MAX_TRANSFER_BYTES: usize = 16 * 1024 * 1024;
/// Longest wait for the connection, the SOA answer, or each message of a transfer.
pub const TRANSFER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What the primary has, compared with the serial we hold.
#[derive(Debug, PartialEq)]
pub enum Fetched {
    /// Nothing newer than `serial`.
    Current { serial: u32 },
    /// The whole zone, its SOA first.
    Whole(Vec<Record>),
    /// IXFR's differences, in order, from the serial asked to `soa`'s.
    Changes {
        soa: Box<Record>,
        steps: Vec<Difference>,
    },
}

/// One step of an IXFR: the records it removed and added (the SOAs left out).
#[derive(Debug, Default, PartialEq)]
pub struct Difference {
    pub removed: Vec<Record>,
    pub added: Vec<Record>,
}

/// Why a refresh or transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("no answer within {}s", TRANSFER_READ_TIMEOUT.as_secs())]
    Timeout,
    #[error("the primary answered {0}")]
    Refused(ResponseCode),
    #[error("the answer's TSIG does not verify: {0}")]
    Tsig(String),
    #[error("the transfer broke off after {0} records, before its closing SOA")]
    BrokeOff(usize),
    #[error("more than {MAX_TRANSFER_RECORDS} records or {MAX_TRANSFER_BYTES} bytes")]
    TooLarge,
    #[error("malformed transfer: {0}")]
    Malformed(String),
}

/// A primary of one zone, and the key its exchanges are signed with.
pub struct Primary<'a> {
    pub addr: SocketAddr,
    pub key: Option<&'a TSigner>,
}

impl Primary<'_> {
    /// The serial of `zone` on the primary (a UDP SOA query, signed when there is a key).
    pub async fn serial(&self, zone: &Name) -> Result<u32, FetchError> {
        let (packet, mut verifier) = self.query(zone, RecordType::SOA, None)?;
        let local: SocketAddr = match self.addr {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).await?;
        socket.connect(self.addr).await?;
        socket.send(&packet).await?;
        let mut buffer = vec![0u8; MAX_TCP_MESSAGE];
        let id = u16::from_be_bytes([packet[0], packet[1]]);
        let answer = loop {
            let len = timeout(socket.recv(&mut buffer)).await??;
            let answer = &buffer[..len];
            if answer.len() >= 2 && u16::from_be_bytes([answer[0], answer[1]]) == id {
                break answer;
            }
        };
        let message = check(answer, verifier.as_mut())?;
        let soa = message
            .answers
            .iter()
            .find(|record| record.record_type() == RecordType::SOA);
        soa.and_then(soa_serial)
            .ok_or_else(|| FetchError::Malformed("the SOA answer holds no SOA".into()))
    }

    /// IXFR from `serial` when we hold the zone, AXFR otherwise, over TCP.
    pub async fn fetch(&self, zone: &Name, serial: Option<u32>) -> Result<Fetched, FetchError> {
        let qtype = match serial {
            Some(_) => RecordType::IXFR,
            None => RecordType::AXFR,
        };
        let (packet, mut verifier) = self.query(zone, qtype, serial)?;
        let mut stream = timeout(TcpStream::connect(self.addr)).await??;
        let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&packet);
        stream.write_all(&framed).await?;
        let mut reader = Reader::new(zone.clone(), serial);
        let mut buffer = vec![0u8; MAX_TCP_MESSAGE];
        let mut bytes = 0;
        while !reader.done() {
            let len = match timeout(stream.read_u16()).await? {
                Ok(len) => usize::from(len),
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(FetchError::BrokeOff(reader.count));
                }
                Err(error) => return Err(error.into()),
            };
            match timeout(stream.read_exact(&mut buffer[..len])).await? {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(FetchError::BrokeOff(reader.count));
                }
                Err(error) => return Err(error.into()),
            }
            bytes += len;
            if bytes > MAX_TRANSFER_BYTES {
                return Err(FetchError::TooLarge);
            }
            let message = check(&buffer[..len], verifier.as_mut())?;
            reader.take(message.answers)?;
        }
        reader.finish()
    }

    /// The query, signed when there is a key, and the verifier of its answer's chain.
    fn query(
        &self,
        zone: &Name,
        qtype: RecordType,
        serial: Option<u32>,
    ) -> Result<(Vec<u8>, Option<TSigVerifier>), FetchError> {
        let mut id = [0u8; 2];
        getrandom::fill(&mut id).map_err(|error| io::Error::other(error.to_string()))?;
        let mut message = Message::new(u16::from_be_bytes(id), MessageType::Query, OpCode::Query);
        message.add_query(Query::query(zone.clone(), qtype));
        if let Some(serial) = serial {
            // RFC 1995 section 3: our SOA in the authority section; only its serial counts.
            let soa =
                hickory_proto::rr::rdata::SOA::new(zone.clone(), zone.clone(), serial, 0, 0, 0, 0);
            message.add_authority(Record::from_rdata(zone.clone(), 0, RData::SOA(soa)));
        }
        let verifier = match self.key {
            Some(key) => sign_query(key, &mut message).map_err(FetchError::Tsig)?,
            None => None,
        };
        let packet = message
            .to_vec()
            .map_err(|error| FetchError::Malformed(error.to_string()))?;
        Ok((packet, verifier))
    }
}

async fn timeout<T>(future: impl Future<Output = T>) -> Result<T, FetchError> {
    tokio::time::timeout(TRANSFER_READ_TIMEOUT, future)
        .await
        .map_err(|_| FetchError::Timeout)
}

/// One message of an answer: its TSIG verified in the chain (when signed), a NOERROR
/// response.
fn check(bytes: &[u8], verifier: Option<&mut TSigVerifier>) -> Result<Message, FetchError> {
    let message = match verifier {
        Some(verifier) => verifier
            .verify(bytes)
            .map(|response| response.into_message())
            .map_err(|error| FetchError::Tsig(error.to_string()))?,
        None => {
            Message::from_vec(bytes).map_err(|error| FetchError::Malformed(error.to_string()))?
        }
    };
    if message.metadata.message_type != MessageType::Response {
        return Err(FetchError::Malformed("not a response".into()));
    }
    match message.metadata.response_code {
        ResponseCode::NoError => Ok(message),
        rcode => Err(FetchError::Refused(rcode)),
    }
}

fn soa_serial(record: &Record) -> Option<u32> {
    match &record.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    }
}

/// Reads a transfer's records across its messages (RFC 1995 section 4, RFC 5936 section
/// 2.2): the first SOA says which serial the transfer ends at; an IXFR whose second
/// record is an SOA is a list of differences; anything else runs to that serial's SOA.
struct Reader {
    zone: Name,
    asked_from: Option<u32>,
    records: Vec<Record>,
    count: usize,
    end: Option<u32>,
    closed: bool,
}

impl Reader {
    fn new(zone: Name, asked_from: Option<u32>) -> Reader {
        Reader {
            zone,
            asked_from,
            records: Vec::new(),
            count: 0,
            end: None,
            closed: false,
        }
    }

    fn done(&self) -> bool {
        self.closed
    }

    fn take(&mut self, answers: Vec<Record>) -> Result<(), FetchError> {
        for record in answers {
            if self.closed {
                return Err(FetchError::Malformed(
                    "records after the closing SOA".into(),
                ));
            }
            if record.dns_class != DNSClass::IN {
                continue;
            }
            if !self.zone.zone_of(&record.name) {
                return Err(FetchError::Malformed(format!(
                    "{} is outside zone {}",
                    record.name, self.zone
                )));
            }
            self.count += 1;
            if self.count > MAX_TRANSFER_RECORDS {
                return Err(FetchError::TooLarge);
            }
            let serial = soa_serial(&record).filter(|_| record.name == self.zone);
            match (self.end, serial) {
                (None, None) => {
                    return Err(FetchError::Malformed(
                        "the first record is not the SOA".into(),
                    ));
                }
                (None, Some(serial)) => {
                    self.end = Some(serial);
                    // A lone SOA no newer than ours: current (IXFR, section 4).
                    if self
                        .asked_from
                        .is_some_and(|from| !super::serial_is_older(from, serial))
                    {
                        self.closed = true;
                    }
                }
                (Some(end), Some(serial)) if serial == end && self.closes() => self.closed = true,
                _ => {}
            }
            self.records.push(record);
        }
        Ok(())
    }

    /// Whether an SOA of the end serial now closes the transfer: always in AXFR form;
    /// in IXFR's difference form only where a difference's deletions would start.
    fn closes(&self) -> bool {
        if !self.incremental() {
            return true;
        }
        // Records so far: the first SOA, then per difference an SOA, deletions, an SOA,
        // additions. The SOA ending it comes where the next difference would start.
        self.records
            .iter()
            .skip(1)
            .filter(|record| record.record_type() == RecordType::SOA && record.name == self.zone)
            .count()
            % 2
            == 0
    }

    /// An IXFR answered with differences: its second record is an SOA.
    fn incremental(&self) -> bool {
        self.asked_from.is_some()
            && self
                .records
                .get(1)
                .is_some_and(|record| record.record_type() == RecordType::SOA)
    }

    fn finish(self) -> Result<Fetched, FetchError> {
        let incremental = self.incremental();
        let Reader {
            mut records, end, ..
        } = self;
        let serial = end.ok_or(FetchError::BrokeOff(0))?;
        if records.len() == 1 {
            return Ok(Fetched::Current { serial });
        }
        let soa = records.remove(0);
        if !incremental {
            records.pop();
            records.insert(0, soa);
            return Ok(Fetched::Whole(records));
        }
        records.pop();
        let mut steps = Vec::new();
        let mut adding = true;
        for record in records {
            if record.record_type() == RecordType::SOA && record.name == soa.name {
                adding = !adding;
                if !adding {
                    steps.push(Difference::default());
                }
                continue;
            }
            let Some(step) = steps.last_mut() else {
                return Err(FetchError::Malformed("a difference without its SOA".into()));
            };
            match adding {
                false => step.removed.push(record),
                true => step.added.push(record),
            }
        }
        Ok(Fetched::Changes {
            soa: Box::new(soa),
            steps,
        })
    }
}

#[cfg(test)]
mod tests;
