import { Module } from '@nestjs/common';
import { AuthController } from './auth.controller';
import { AuthService } from './auth.service';
import { PASSWORD_HASHER, USER_STORE } from './auth.tokens';
import { ScryptPasswordHasher } from './password.hasher';
import { SqliteUserStore } from './sqlite-user.store';

@Module({
  controllers: [AuthController],
  providers: [
    AuthService,
    { provide: USER_STORE, useClass: SqliteUserStore },
    { provide: PASSWORD_HASHER, useFactory: () => new ScryptPasswordHasher() },
  ],
  exports: [AuthService],
})
export class AuthModule {}
