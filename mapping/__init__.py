"""Study-area grid, incident data, KDE maps, the CNN-LSTM forecast and the live map service."""
