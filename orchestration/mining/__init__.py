"""Mining an unlabelled face pool on Ray Data and publishing the mined rows."""
