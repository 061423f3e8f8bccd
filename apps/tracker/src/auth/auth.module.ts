import { Module } from '@nestjs/common';
import { AuthController } from './auth.controller';
import { AuthService } from './auth.service';
import { PASSWORD_HASHER, USER_STORE } from './auth.tokens';
import { TRACKER_CONFIG, TrackerConfig } from '../config/tracker.config';
import { LoginThrottle } from './login-throttle';
import { BoundedPasswordHasher, ScryptPasswordHasher } from './password.hasher';
import { SqliteUserStore } from './sqlite-user.store';

@Module({
  controllers: [AuthController],
  providers: [
    AuthService,
    { provide: USER_STORE, useClass: SqliteUserStore },
    {
      provide: PASSWORD_HASHER,
      useFactory: ({ limits }: TrackerConfig) =>
        new BoundedPasswordHasher(new ScryptPasswordHasher(), limits.maxScrypt, limits.maxScryptQueue),
      inject: [TRACKER_CONFIG],
    },
    {
      provide: LoginThrottle,
      useFactory: ({ limits }: TrackerConfig) => new LoginThrottle(limits),
      inject: [TRACKER_CONFIG],
    },
  ],
  exports: [AuthService],
})
export class AuthModule {}
