"""Running sessiond's processes: one supervisor (:mod:`.processes`), the specs of the servers
it runs (:mod:`.specs`) and a whole deployment on this machine (:mod:`.local`)."""

from sessiond.cluster.local import LocalCluster
from sessiond.cluster.processes import ManagedProcess, ProcessFailed, ProcessSpec

__all__ = ("LocalCluster", "ManagedProcess", "ProcessFailed", "ProcessSpec")
