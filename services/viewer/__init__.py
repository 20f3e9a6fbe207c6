"""The pathway viewer for municipal care coordinators (web; reads PathwayService over gRPC)."""
