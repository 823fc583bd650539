"""Scale-out over MPI: one ``vtpu run`` spread over the ranks of ``mpiexec`` (see docs/cluster.md)."""
