/** Repository signing on SQLite (test/suites/signing-suite.ts). */
import { runSigningSuite } from '../suites/signing-suite.ts';

runSigningSuite('sqlite');
