"""Sans-IO codecs: pure functions over bytes and text, no sockets, no database."""
