"""The only engine code that touches the network: DNS, SMTP, SOCKS."""
