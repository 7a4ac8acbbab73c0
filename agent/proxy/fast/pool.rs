//! Per-thread buffer pools: an idle client connection holds no buffer, and request and response buffers are reused.

use std::cell::RefCell;

use bytes::BytesMut;

use super::head::MAX_BODY;

thread_local! {
    static READ_BUFS: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static OUT_BUFS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Read buffer taken from the thread's pool when a connection has bytes to read.
pub(super) const READ_BUF: usize = 8 * 1024;

/// Buffers kept per thread for reuse.
pub(super) const POOLED: usize = 64;

/// Ensure `buf` has room to read into; an idle connection holds no buffer, so its first
/// read takes one from the thread's pool.
pub(super) fn make_room(buf: &mut BytesMut) {
    if buf.capacity() == 0 {
        *buf = READ_BUFS
            .with_borrow_mut(Vec::pop)
            .unwrap_or_else(|| BytesMut::with_capacity(READ_BUF));
    } else if buf.capacity() - buf.len() < 1024 {
        buf.reserve(READ_BUF);
    }
}

/// Return an emptied read buffer to the pool, if its memory is free again (the last
/// request's header values may still share it, e.g. in a queued access-log line).
pub(super) fn recycle(mut buf: BytesMut) {
    if buf.try_reclaim(READ_BUF) && buf.capacity() <= 4 * READ_BUF {
        READ_BUFS.with_borrow_mut(|pool| {
            if pool.len() < POOLED {
                pool.push(buf);
            }
        });
    }
}

pub(super) fn take_out() -> Vec<u8> {
    OUT_BUFS
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| Vec::with_capacity(4096))
}

pub(super) fn put_out(mut out: Vec<u8>) {
    if out.capacity() > 2 * MAX_BODY as usize {
        return;
    }
    out.clear();
    OUT_BUFS.with_borrow_mut(|pool| {
        if pool.len() < POOLED {
            pool.push(out);
        }
    });
}
