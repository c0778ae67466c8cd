"""Which mail settings are in force (resolution) and how the screens save them (saving)."""
