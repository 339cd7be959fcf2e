"""smbfs: a user-space SMB2/SMB3 client for Linux, mounted through FUSE."""

__version__ = "0.1.0"
