"""Scale-out over MPI: one ``vtpu run`` spread over the ranks of ``mpiexec`` (see docs/cluster.md).

``ranks`` runs a rank's sentrons and merges the run on rank 0 (the runner's hook); ``router`` keeps
each scroll on its home rank; ``checkpoint`` writes and reads checkpoint files; ``latency`` and
``scaling`` measure the C pipe and the cluster for the phase-2 gate. The MPI transport itself is
:mod:`vtpu_cli.fleet.mpi`.
"""
