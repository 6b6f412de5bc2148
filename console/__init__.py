"""Web console for analysts and patrols: live map, cell explanations, events, cameras, clip analysis."""
