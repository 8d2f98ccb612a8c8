"""`make bench`: the hub against a bare pass-through proxy and the provider called directly."""
