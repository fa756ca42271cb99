//! The rtnetlink requests of `linux.netDevices`: find links and addresses, move, rename, set up.
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::*;

/// An rtnetlink socket bound to one network namespace.
pub(super) struct Rtnl {
    sock: Socket,
    seq: u32,
}

impl Rtnl {
    pub(super) fn from_socket(mut sock: Socket) -> io::Result<Rtnl> {
        // The kernel answers at once; a reply that never comes is an error, not a hang.
        nix::sys::socket::setsockopt(
            &sock,
            nix::sys::socket::sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(10, 0),
        )?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl { sock, seq: 0 })
    }

    /// In the calling thread's network namespace.
    pub(super) fn here() -> io::Result<Rtnl> {
        Rtnl::from_socket(Socket::new(NETLINK_ROUTE)?)
    }

    /// In the network namespace `netns`: a thread joins it, makes the socket (which stays in
    /// that namespace) and ends.
    pub(super) fn inside(netns: BorrowedFd<'_>) -> io::Result<Rtnl> {
        let sock = std::thread::scope(|s| {
            s.spawn(|| -> io::Result<Socket> {
                nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET)?;
                Socket::new(NETLINK_ROUTE)
            })
            .join()
            .unwrap_or_else(|_| {
                Err(io::Error::other(
                    "the thread that joins the namespace panicked",
                ))
            })
        })?;
        Rtnl::from_socket(sock)
    }

    /// Send `msg` with `flags` and collect the replies up to the acknowledgement, or with
    /// `dump` up to the end of the dump (which has no acknowledgement).
    pub(super) fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        dump: bool,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags | if dump { NLM_F_DUMP } else { NLM_F_ACK };
        header.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        req.finalize();
        let mut buf = vec![0; req.buffer_len()];
        req.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut at = 0;
            while at < data.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[at..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    break;
                }
                at += (len + 3) & !3;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Done(d) if d.code != 0 => {
                        return Err(io::Error::from_raw_os_error(d.code.abs()))
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                    NetlinkPayload::Error(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    _ => {}
                }
            }
        }
    }

    pub(super) fn get_link(&mut self, msg: LinkMessage) -> io::Result<Option<LinkMessage>> {
        match self.request(RouteNetlinkMessage::GetLink(msg), false, 0) {
            Ok(replies) => Ok(replies.into_iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) fn link_by_name(&mut self, name: &str) -> io::Result<Option<LinkMessage>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.get_link(msg)
    }

    pub(super) fn link_by_index(&mut self, index: u32) -> io::Result<Option<LinkMessage>> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.get_link(msg)
    }

    /// The device called `name` with the hardware address `hw` (when it has one). For a
    /// template: the device at `index` (the kernel keeps the index unless it is taken) if its
    /// name fits, else the only device whose name fits, with that hardware address.
    pub(super) fn find(
        &mut self,
        name: &str,
        index: u32,
        hw: Option<&[u8]>,
    ) -> io::Result<Option<LinkMessage>> {
        let ours = |l: &LinkMessage| {
            link_name(l).is_some_and(|n| fits_template(&n, name))
                && (hw.is_none() || hardware_address(l).as_deref() == hw)
        };
        if !name.contains('%') {
            return Ok(self.link_by_name(name)?.filter(ours));
        }
        if let Some(l) = self.link_by_index(index)?.filter(ours) {
            return Ok(Some(l));
        }
        if hw.is_none() {
            return Ok(None);
        }
        let mut fits: Vec<LinkMessage> = self
            .request(
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
                true,
                0,
            )?
            .into_iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .filter(ours)
            .collect();
        Ok(if fits.len() == 1 { fits.pop() } else { None })
    }

    /// Every address of the device `index`.
    pub(super) fn addresses(&mut self, index: u32) -> io::Result<Vec<AddressMessage>> {
        let replies = self.request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            true,
            0,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => Some(a),
                _ => None,
            })
            .collect())
    }

    /// Move device `index` into the network namespace `netns` as `name`, in one message.
    pub(super) fn move_to(
        &mut self,
        index: u32,
        netns: BorrowedFd<'_>,
        name: &str,
    ) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes
            .push(LinkAttribute::NetNsFd(netns.as_raw_fd()));
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.request(RouteNetlinkMessage::NewLink(msg), false, 0)
            .map(drop)
    }

    pub(super) fn set_up(&mut self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::NewLink(msg), false, 0)
            .map(drop)
    }

    /// Add `a` (an address as dumped from another device) to device `index`: its family,
    /// prefix, scope, local, peer and broadcast addresses; not its label, which named the
    /// device where it was, nor its lifetimes.
    pub(super) fn add_address(&mut self, index: u32, a: &AddressMessage) -> io::Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = a.header.family;
        msg.header.prefix_len = a.header.prefix_len;
        msg.header.scope = a.header.scope;
        msg.header.flags = AddressHeaderFlags::empty();
        msg.header.index = index;
        msg.attributes = a
            .attributes
            .iter()
            .filter(|attr| {
                matches!(
                    attr,
                    AddressAttribute::Address(_)
                        | AddressAttribute::Local(_)
                        | AddressAttribute::Broadcast(_)
                )
            })
            .cloned()
            .collect();
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            false,
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }
}
