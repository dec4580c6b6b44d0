//! nftables compilation (in progress).
