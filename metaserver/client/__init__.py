"""Python client for the metaserver API: os-like calls that return metaserver.types
values and raise OSError subclasses.

    with Client("127.0.0.1:7420") as c:
        d = c.mkdir(ROOT_INO, "data")
        c.create(d.ino, "a.txt")
        names = [e.name for e in c.readdir(d.ino)]

Session consistency across a primary and its followers: metaserver.client.session.
"""

from metaserver.client.core import Batch, Client, RetryPolicy
from metaserver.client.operations import Name
from metaserver.client.session import SessionTimeout, SessionToken

__all__ = ["Batch", "Client", "Name", "RetryPolicy", "SessionTimeout", "SessionToken"]
