//! Transmission: the request loop, workers and replies.
