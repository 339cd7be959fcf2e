"""The trio engine: Client -> Session -> Channel(s) -> Connection.

All concurrency of smbfs lives here; it speaks SMB only through smbfs.proto.
"""
