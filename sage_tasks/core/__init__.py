"""What every stage shares: settings, errors, the one subprocess runner, logging, rendering, atomic files."""
