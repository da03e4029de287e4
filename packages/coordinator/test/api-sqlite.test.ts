// API tests against embedded SQLite (the default storage).
import { apiCases } from './api-cases.js';

apiCases('sqlite', async () => ({}));
